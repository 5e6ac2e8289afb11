package main

import (
	"embed"
	"io/fs"
	"net/http"
	"path"

	"github.com/gofiber/fiber/v2"
)

// The dashboard is a few static files built into the binary: the network
// it runs on is closed, so nothing comes from a CDN. The page asks for a
// key and calls the API like any client.
//
//go:embed dashboard
var dashboardFS embed.FS

var dashboardTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

// dashboardCSP allows nothing from elsewhere: a test of the page proves it
// needs nothing from elsewhere.
const dashboardCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

func redirectDashboard() fiber.Handler {
	return func(c *fiber.Ctx) error { return c.Redirect("/dashboard/", http.StatusFound) }
}

func dashboardFile(name string) fiber.Handler {
	return func(c *fiber.Ctx) error { return sendDashboardFile(c, name) }
}

func dashboardFiles() fiber.Handler {
	return func(c *fiber.Ctx) error { return sendDashboardFile(c, c.Params("*")) }
}

func sendDashboardFile(c *fiber.Ctx, name string) error {
	typ, ok := dashboardTypes[path.Ext(name)]
	if !ok || !fs.ValidPath(name) {
		return errNotFound("no such file")
	}
	b, err := dashboardFS.ReadFile("dashboard/" + name)
	if err != nil {
		return errNotFound("no such file")
	}
	c.Set(fiber.HeaderContentType, typ)
	c.Set(fiber.HeaderContentSecurityPolicy, dashboardCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(b)
}
