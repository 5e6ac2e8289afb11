package testenv

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kustomize renders the kustomization in dir as `kubectl kustomize` does,
// for the features deploy/ uses: resources (files and directories of other
// kustomizations), namespace, labels (metadata only), images, patches
// (strategic merge of a whole object, matched by kind and name; lists of
// named items merge by name) and secret and config map generators from
// files (without the name hash, which deploy/ turns off). Checked once
// against kubectl kustomize 5.5 on the city overlay: the same objects, but
// for the order of merged list items (kustomize puts a patch's items
// first; the order of env matters only for $(VAR) references, which point
// back to variables the base defines first). Anything else in a
// kustomization is an error, so a feature added to deploy/ is added here
// before it can go untested. The answer is every object as a generic map.
func Kustomize(dir string) ([]map[string]any, error) { return kustomize(dir, false) }

// kustomize renders dir; with sampleFiles a generator's file that does not
// exist (a secret the operator has not made yet) becomes an empty key.
func kustomize(dir string, sampleFiles bool) ([]map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Namespace  string `yaml:"namespace"`
		Resources  []string
		Labels     []struct {
			Pairs            map[string]string `yaml:"pairs"`
			IncludeSelectors bool              `yaml:"includeSelectors"`
			IncludeTemplates bool              `yaml:"includeTemplates"`
		}
		Images []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		}
		Patches []struct {
			Path string
		}
		GeneratorOptions struct {
			DisableNameSuffixHash bool `yaml:"disableNameSuffixHash"`
		} `yaml:"generatorOptions"`
		SecretGenerator    []generator `yaml:"secretGenerator"`
		ConfigMapGenerator []generator `yaml:"configMapGenerator"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w (a feature testenv/kustomize.go does not render?)", dir, err)
	}
	var objs []map[string]any
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var more []map[string]any
		if st.IsDir() {
			more, err = kustomize(p, sampleFiles)
		} else {
			more, err = readObjects(p)
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	if (len(k.SecretGenerator) > 0 || len(k.ConfigMapGenerator) > 0) && !k.GeneratorOptions.DisableNameSuffixHash {
		return nil, fmt.Errorf("%s: generators with name hashes: testenv/kustomize.go does not rewrite references to them", dir)
	}
	for _, g := range k.SecretGenerator {
		o, err := g.object(dir, "Secret", sampleFiles)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	for _, g := range k.ConfigMapGenerator {
		o, err := g.object(dir, "ConfigMap", sampleFiles)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	for _, p := range k.Patches {
		patches, err := readObjects(filepath.Join(dir, p.Path))
		if err != nil {
			return nil, err
		}
		for _, patch := range patches {
			i := slices.IndexFunc(objs, func(o map[string]any) bool {
				return o["kind"] == patch["kind"] && ObjectName(o) == ObjectName(patch)
			})
			if i < 0 {
				return nil, fmt.Errorf("%s: patch %s %s matches no object", dir, patch["kind"], ObjectName(patch))
			}
			objs[i] = mergeStrategic(objs[i], patch).(map[string]any)
		}
	}
	for _, o := range objs {
		meta, _ := o["metadata"].(map[string]any)
		if meta == nil {
			return nil, fmt.Errorf("%s: an object without metadata", dir)
		}
		for _, l := range k.Labels {
			if l.IncludeSelectors || l.IncludeTemplates {
				return nil, fmt.Errorf("%s: labels into selectors or templates: not rendered by testenv/kustomize.go", dir)
			}
			labels, _ := meta["labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
				meta["labels"] = labels
			}
			for key, v := range l.Pairs {
				labels[key] = v
			}
		}
		if k.Namespace != "" && o["kind"] != "Namespace" {
			meta["namespace"] = k.Namespace
		}
		for _, c := range PodContainers(o) {
			image, _ := c["image"].(string)
			name, tag, _ := strings.Cut(image, ":")
			for _, im := range k.Images {
				if im.Name != name {
					continue
				}
				if im.NewName != "" {
					name = im.NewName
				}
				if im.NewTag != "" {
					tag = im.NewTag
				}
				c["image"] = name + ":" + tag
			}
		}
	}
	return objs, nil
}

type generator struct {
	Name  string
	Files []string
}

// object is the Secret or ConfigMap a generator makes: one key per file,
// named like the file.
func (g generator) object(dir, kind string, sampleFiles bool) (map[string]any, error) {
	data := map[string]any{}
	for _, f := range g.Files {
		key, path, ok := strings.Cut(f, "=")
		if !ok {
			key, path = filepath.Base(f), f
		}
		b, err := os.ReadFile(filepath.Join(dir, path))
		if sampleFiles && errors.Is(err, fs.ErrNotExist) {
			b, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s generator %s: %w", kind, g.Name, err)
		}
		if kind == "Secret" {
			data[key] = base64.StdEncoding.EncodeToString(b)
		} else {
			data[key] = string(b)
		}
	}
	o := map[string]any{"apiVersion": "v1", "kind": kind, "metadata": map[string]any{"name": g.Name}, "data": data}
	if kind == "Secret" {
		o["type"] = "Opaque"
	}
	return o, nil
}

// readObjects reads every object of a (multi-document) YAML file.
func readObjects(path string) ([]map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// mergeStrategic merges patch into base: maps key by key, lists of maps
// that all have a name by name (the way Kubernetes merges containers, env,
// ports, volumes), anything else replaced.
func mergeStrategic(base, patch any) any {
	switch p := patch.(type) {
	case map[string]any:
		b, ok := base.(map[string]any)
		if !ok {
			return p
		}
		out := map[string]any{}
		for k, v := range b {
			out[k] = v
		}
		for k, v := range p {
			out[k] = mergeStrategic(b[k], v)
		}
		return out
	case []any:
		b, ok := base.([]any)
		if !ok || !allNamed(p) || !allNamed(b) {
			return p
		}
		out := slices.Clone(b)
		for _, item := range p {
			name := item.(map[string]any)["name"]
			if i := slices.IndexFunc(out, func(x any) bool { return x.(map[string]any)["name"] == name }); i >= 0 {
				out[i] = mergeStrategic(out[i], item)
			} else {
				out = append(out, item)
			}
		}
		return out
	}
	return patch
}

func allNamed(l []any) bool {
	for _, x := range l {
		m, ok := x.(map[string]any)
		if !ok || m["name"] == nil {
			return false
		}
	}
	return true
}

// ObjectName returns an object's metadata.name.
func ObjectName(o map[string]any) string {
	meta, _ := o["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	return name
}

// PodSpec returns the pod template's spec of a workload (Deployment,
// StatefulSet, DaemonSet, Job), or nil.
func PodSpec(o map[string]any) map[string]any {
	spec, _ := o["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	ps, _ := tmpl["spec"].(map[string]any)
	return ps
}

// PodContainers returns a workload's init containers and containers.
func PodContainers(o map[string]any) []map[string]any {
	ps := PodSpec(o)
	var out []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		l, _ := ps[key].([]any)
		for _, c := range l {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}
