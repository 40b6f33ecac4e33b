"""HTTP API pieces shared by the read, list and fleet routes: parameters, paging, OpenAPI."""
