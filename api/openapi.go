package main

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPIDoc is the OpenAPI 3 description of every route; TestOpenAPIMatchesRoutes
// keeps it and the route table in step.
//
//go:embed openapi.json
var openAPIDoc []byte

func getOpenAPI() fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openAPIDoc)
	}
}
