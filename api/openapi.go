package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"

	"github.com/gofiber/fiber/v2"
)

// The OpenAPI 3 description of every route is openapi.json plus one
// fragment per area (openapi-*.json: paths and components of their own),
// so that areas built side by side do not all edit one file.
// TestOpenAPIMatchesRoutes keeps the merged document and the route table
// in step.
//
//go:embed openapi.json openapi-*.json
var openAPIFiles embed.FS

// openAPIDoc is the merged document, as served.
var openAPIDoc = func() []byte {
	b, err := mergeOpenAPI(openAPIFiles)
	if err != nil {
		panic(err) // a broken embedded document; TestOpenAPIMatchesRoutes catches it first
	}
	return b
}()

// mergeOpenAPI adds every fragment's paths and components to openapi.json.
// A path or component defined twice is an error, never a silent override.
func mergeOpenAPI(files fs.FS) ([]byte, error) {
	read := func(name string) (map[string]json.RawMessage, error) {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return m, nil
	}
	doc, err := read("openapi.json")
	if err != nil {
		return nil, err
	}
	frags, err := fs.Glob(files, "openapi-*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(frags)
	if len(frags) == 0 {
		return marshal(doc)
	}
	paths, err := object(doc["paths"])
	if err != nil {
		return nil, fmt.Errorf("openapi.json paths: %w", err)
	}
	comps, err := object(doc["components"])
	if err != nil {
		return nil, fmt.Errorf("openapi.json components: %w", err)
	}
	for _, name := range frags {
		frag, err := read(name)
		if err != nil {
			return nil, err
		}
		fp, err := object(frag["paths"])
		if err != nil {
			return nil, fmt.Errorf("%s paths: %w", name, err)
		}
		if err := addAll(paths, fp, name+": path"); err != nil {
			return nil, err
		}
		fc, err := object(frag["components"])
		if err != nil {
			return nil, fmt.Errorf("%s components: %w", name, err)
		}
		for section, raw := range fc {
			items, err := object(raw)
			if err != nil {
				return nil, fmt.Errorf("%s components.%s: %w", name, section, err)
			}
			have, err := object(comps[section])
			if err != nil {
				return nil, fmt.Errorf("openapi.json components.%s: %w", section, err)
			}
			if err := addAll(have, items, name+": components."+section); err != nil {
				return nil, err
			}
			if comps[section], err = marshal(have); err != nil {
				return nil, err
			}
		}
	}
	if doc["paths"], err = marshal(paths); err != nil {
		return nil, err
	}
	if doc["components"], err = marshal(comps); err != nil {
		return nil, err
	}
	return marshal(doc)
}

// marshal is json.Marshal without HTML escaping ("<key>" stays readable).
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func object(raw json.RawMessage) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(raw) == 0 {
		return m, nil
	}
	err := json.Unmarshal(raw, &m)
	return m, err
}

func addAll(dst, src map[string]json.RawMessage, what string) error {
	for k, v := range src {
		if _, dup := dst[k]; dup {
			return fmt.Errorf("%s %s is defined twice", what, k)
		}
		dst[k] = v
	}
	return nil
}

func getOpenAPI() fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openAPIDoc)
	}
}
