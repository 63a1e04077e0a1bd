package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/helpcaster/helpcaster/internal/confparse"
	"github.com/helpcaster/helpcaster/signaling/auth"
)

// This file reads the YAML config file given by --config: the settings of
// the table in settings.go, under their dotted keys, and the "orgs" list,
// which it hands to auth.ParseOrgs.

// maxConfigFileBytes bounds the YAML file read by --config.
const maxConfigFileBytes = 1 << 20

// configFile is what the YAML file sets.
type configFile struct {
	values map[string]string // yaml path -> raw value (lists joined with ",")
	orgs   []auth.Org
}

// readConfigFile reads and checks the YAML file at path. Secrets named by
// api_secret_env are read with env.
func readConfigFile(path string, env func(string) string) (*configFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	if len(data) > maxConfigFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigFileBytes)
	}
	cf, err := parseConfigFile(data, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cf, nil
}

func parseConfigFile(data []byte, env func(string) string) (*configFile, error) {
	cf := &configFile{values: map[string]string{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cf, nil // empty file
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	root := confparse.Deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = confparse.Deref(root.Content[0])
	}
	if confparse.IsNull(root) {
		return cf, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping of settings", root.Line)
	}
	paths := map[string]kind{}
	for _, s := range settings(&Config{}) {
		paths[s.yaml] = s.kind
	}
	if err := cf.walk(root, "", paths, env); err != nil {
		return nil, err
	}
	return cf, nil
}

func (cf *configFile) walk(m *yaml.Node, prefix string, paths map[string]kind, env func(string) string) error {
	kvs, err := confparse.Pairs(m, prefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		path := prefix + k.Value
		if path == "orgs" {
			orgs, err := auth.ParseOrgs(v, env)
			if err != nil {
				return err
			}
			cf.orgs = orgs
			continue
		}
		if kd, ok := paths[path]; ok {
			if confparse.IsNull(v) {
				continue
			}
			val, err := confparse.Scalar(v, kd == kindList)
			if err != nil {
				return fmt.Errorf("line %d: %s: %w", v.Line, path, err)
			}
			cf.values[path] = val
			continue
		}
		isSection := false
		for p := range paths {
			if strings.HasPrefix(p, path+".") {
				isSection = true
				break
			}
		}
		if !isSection {
			return fmt.Errorf("line %d: unknown key %q", k.Line, path)
		}
		if confparse.IsNull(v) {
			continue
		}
		if v.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: %s must be a mapping", v.Line, path)
		}
		if err := cf.walk(v, path+".", paths, env); err != nil {
			return err
		}
	}
	return nil
}
