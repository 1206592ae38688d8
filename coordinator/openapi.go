package coordinator

import _ "embed"

// OpenAPI is the OpenAPI 3 description of the REST API, served at
// /api/v1/openapi.json. It is a hand-written file rather than generated so
// that it reads as documentation; openapi_test.go keeps it in step with
// the routes the server registers.
//
//go:embed openapi.json
var OpenAPI []byte
