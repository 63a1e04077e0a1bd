package auth

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/helpcaster/helpcaster/internal/confparse"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// This file holds the YAML form of organizations and their queues: the
// "orgs" list of the server's config file, read into Org and Queue values
// (and each queue's routing rules into a routing.Policy). It checks the
// form: known keys, no key twice, values of the right shape. NewDirectory
// checks what the values mean. Errors start with the line and name the
// YAML path, like `line 7: orgs[0].queues[1].max_length: "lots" is not an
// integer`. It holds no state.

// ParseOrgs reads the "orgs" list of a config file. env looks up the
// environment variable an org's api_secret_env names. A null node is no
// organizations.
func ParseOrgs(n *yaml.Node, env func(string) string) ([]Org, error) {
	if confparse.IsNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: orgs must be a list", n.Line)
	}
	orgs := make([]Org, 0, len(n.Content))
	for i, item := range n.Content {
		o, err := parseOrg(confparse.Deref(item), fmt.Sprintf("orgs[%d]", i), env)
		if err != nil {
			return nil, err
		}
		orgs = append(orgs, o)
	}
	return orgs, nil
}

// parseOrg reads one organization at path where (like "orgs[0]").
func parseOrg(item *yaml.Node, where string, env func(string) string) (Org, error) {
	if item.Kind != yaml.MappingNode {
		return Org{}, fmt.Errorf("line %d: %s must be a mapping", item.Line, where)
	}
	var o Org
	var secret, secretEnv string
	var hasSecret bool
	kvs, err := confparse.Pairs(item, where+".")
	if err != nil {
		return Org{}, err
	}
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		key := where + "." + k.Value
		var err error
		switch k.Value {
		case "id":
			o.ID, err = confparse.Scalar(v, false)
		case "api_key":
			o.APIKey, err = confparse.Scalar(v, false)
		case "api_secret":
			secret, err = confparse.Scalar(v, false)
			hasSecret = true
		case "api_secret_env":
			secretEnv, err = confparse.Scalar(v, false)
		case "origins":
			o.Origins, err = confparse.StringList(v)
		case "queues":
			if o.Queues, err = parseQueues(v, key); err != nil {
				return Org{}, err // already names the line and key
			}
		default:
			return Org{}, fmt.Errorf("line %d: unknown key %q", k.Line, key)
		}
		if err != nil {
			return Org{}, fmt.Errorf("line %d: %s: %w", v.Line, key, err)
		}
	}
	if o.ID != "" {
		where = fmt.Sprintf("%s (%s)", where, o.ID)
	}
	switch {
	case hasSecret && secretEnv != "":
		return Org{}, fmt.Errorf("line %d: %s: give api_secret or api_secret_env, not both", item.Line, where)
	case secretEnv != "":
		secret = env(secretEnv)
		if secret == "" {
			return Org{}, fmt.Errorf("line %d: %s: api_secret_env: environment variable %s is empty or unset", item.Line, where, secretEnv)
		}
	case !hasSecret:
		return Org{}, fmt.Errorf("line %d: %s: api_secret or api_secret_env is required", item.Line, where)
	}
	o.APISecret = []byte(secret)
	return o, nil
}

// parseQueues reads an org's queue list at path (like "orgs[0].queues").
// A queue is a mapping {name, max_length, ...} or a bare name.
func parseQueues(n *yaml.Node, path string) ([]Queue, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: %s: must be a list of {name, max_length}", n.Line, path)
	}
	qs := make([]Queue, 0, len(n.Content))
	for i, item := range n.Content {
		item = confparse.Deref(item)
		where := fmt.Sprintf("%s[%d]", path, i)
		if item.Kind == yaml.ScalarNode {
			qs = append(qs, Queue{Name: item.Value})
			continue
		}
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("line %d: %s: must be a mapping {name, max_length} or a name", item.Line, where)
		}
		q, err := parseQueue(item, where)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// parseQueue reads the queue mapping item at path where (like
// "orgs[0].queues[1]").
func parseQueue(item *yaml.Node, where string) (Queue, error) {
	kvs, err := confparse.Pairs(item, where+".")
	if err != nil {
		return Queue{}, err
	}
	var q Queue
	var rules queueRules
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		key := where + "." + k.Value
		switch k.Value {
		case "name", "max_length", "offer_timeout", "record":
			s, err := confparse.Scalar(v, false)
			if err == nil {
				switch k.Value {
				case "name":
					q.Name = s
				case "max_length":
					q.MaxLength, err = confparse.Int(s, 0, MaxQueueMaxLength)
				case "record":
					q.Record, err = ParseRecord(s)
				default:
					q.OfferTimeout, err = confparse.Duration(s, true)
				}
			}
			if err != nil {
				return Queue{}, fmt.Errorf("line %d: %s: %w", v.Line, key, err)
			}
		case "overflow", "priority", "match":
			if err := confparse.DecodeStrict(v, rules.field(k.Value)); err != nil {
				return Queue{}, fmt.Errorf("line %d: %s: %w", v.Line, key, err)
			}
		default:
			return Queue{}, fmt.Errorf("line %d: unknown key %q", k.Line, key)
		}
	}
	if err := rules.apply(&q); err != nil {
		return Queue{}, fmt.Errorf("line %d: %s: %w", item.Line, where, err)
	}
	return q, nil
}

// queueRules are a queue's overflow and routing settings as the file
// writes them. The structs are anonymous on purpose: yaml names the type
// in its errors ("field level not found in type struct { Attr string ...
// }"), and a named type would change those messages.
type queueRules struct {
	Overflow *struct {
		After string `yaml:"after"`
		To    string `yaml:"to"`
	}
	Priority []struct {
		Attr     string `yaml:"attr"`
		Value    string `yaml:"value"`
		Priority int    `yaml:"priority"`
	}
	Match []struct {
		Attr     string `yaml:"attr"`
		Skill    string `yaml:"skill"`
		MinLevel *int   `yaml:"min_level"`
		Widen    []struct {
			After    string `yaml:"after"`
			MinLevel *int   `yaml:"min_level"`
		} `yaml:"widen"`
	}
}

// field is where the value of the queue key key ("overflow", "priority"
// or "match") is decoded.
func (r *queueRules) field(key string) any {
	switch key {
	case "overflow":
		return &r.Overflow
	case "priority":
		return &r.Priority
	default:
		return &r.Match
	}
}

// apply converts the rules into q's settings; NewDirectory checks them
// further (routing.Policy.Validate among them).
func (r *queueRules) apply(q *Queue) error {
	if o := r.Overflow; o != nil {
		after, err := confparse.Duration(o.After, false)
		if err != nil {
			return fmt.Errorf("overflow.after: %w", err)
		}
		q.Overflow = Overflow{After: after, To: o.To}
	}
	if len(r.Priority) == 0 && len(r.Match) == 0 {
		return nil
	}
	p := &routing.Policy{}
	for _, pr := range r.Priority {
		p.Priorities = append(p.Priorities, routing.PriorityRule{Attr: pr.Attr, Value: pr.Value, Priority: pr.Priority})
	}
	for i, m := range r.Match {
		req := routing.Requirement{Attr: m.Attr, Skill: m.Skill, Steps: []routing.Step{{Level: 1}}}
		if m.MinLevel != nil {
			req.Steps[0].Level = *m.MinLevel
		}
		for j, w := range m.Widen {
			after, err := confparse.Duration(w.After, false)
			if err != nil {
				return fmt.Errorf("match[%d].widen[%d].after: %w", i, j, err)
			}
			if w.MinLevel == nil {
				return fmt.Errorf("match[%d].widen[%d]: min_level is required (0 means any agent)", i, j)
			}
			req.Steps = append(req.Steps, routing.Step{After: after, Level: *w.MinLevel})
		}
		p.Requirements = append(p.Requirements, req)
	}
	q.Policy = p
	return nil
}
