// Package routing decides which agents may take which customers of a queue,
// and in which order customers are served: an organization's routing rules,
// compiled from its configuration.
//
// A customer carries attributes from its token (language=de, tier=gold,
// product=billing, ...). An agent carries skills with levels (language:
// de=5, en=3). A queue's Policy holds:
//
//   - Requirements: for a customer attribute, the agent must have the
//     matching skill value at a minimum level. Steps lower that level the
//     longer the customer waits (level 0: any agent), which is how a queue
//     widens its match ("any language after 60 s"). A customer without the
//     attribute does not constrain the agent.
//   - Priorities: customers whose attribute has a given value rank ahead
//     (tier=gold first); within one priority, the one waiting longest is
//     served first.
//
// The Redis queue store evaluates the same rules in a Lua script from
// Policy.Encoded; the queue package's conformance tests hold the two
// evaluations to the same answers.
package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Limits on rules and skills.
const (
	MaxLevel        = 10  // highest skill level
	MaxPriority     = 999 // highest customer priority
	MaxRequirements = 16  // requirements per queue
	MaxPriorities   = 32  // priority rules per queue
	MaxSteps        = 8   // steps per requirement
	MaxSkills       = 32  // skills per agent
	MaxSkillValues  = 32  // values per skill
	MaxNameLen      = 64  // longest attribute or skill name, in bytes
	MaxValueLen     = 256 // longest attribute or skill value, in bytes
)

// Skills maps a skill name (usually an attribute name, such as "language")
// to the values an agent handles and its level for each (1 to MaxLevel).
type Skills map[string]map[string]int

// Check validates skills as an agent's token carries them. Its messages
// name no values.
func (s Skills) Check() error {
	if len(s) > MaxSkills {
		return fmt.Errorf("more than %d skills", MaxSkills)
	}
	for name, vals := range s {
		if name == "" || len(name) > MaxNameLen {
			return fmt.Errorf("skill name is empty or longer than %d bytes", MaxNameLen)
		}
		if len(vals) > MaxSkillValues {
			return fmt.Errorf("skill %q has more than %d values", name, MaxSkillValues)
		}
		for v, lvl := range vals {
			if v == "" || len(v) > MaxValueLen {
				return fmt.Errorf("a value of skill %q is empty or longer than %d bytes", name, MaxValueLen)
			}
			if lvl < 1 || lvl > MaxLevel {
				return fmt.Errorf("a level of skill %q is %d; levels are 1 to %d", name, lvl, MaxLevel)
			}
		}
	}
	return nil
}

// Step is one stage of a requirement: from After of waiting on, the agent
// needs at least Level in the skill (0: any agent will do).
type Step struct {
	After time.Duration
	Level int
}

// Requirement ties a customer attribute to an agent skill.
type Requirement struct {
	Attr  string // customer attribute, e.g. "language"
	Skill string // agent skill; "" means the same name as Attr
	// Steps start with After 0; After increases and Level never rises.
	// Validate fills in a single {0, 1} step when there are none.
	Steps []Step
}

// PriorityRule ranks customers whose attribute Attr equals Value.
type PriorityRule struct {
	Attr     string
	Value    string
	Priority int // 1 to MaxPriority; customers matching no rule have 0
}

// Policy is one queue's routing rules. The zero Policy (or nil) matches any
// agent to any customer, first come first served. Call Validate once after
// building a Policy and before using it; a validated Policy is read-only and
// safe for concurrent use.
type Policy struct {
	Requirements []Requirement
	Priorities   []PriorityRule

	encoded string
}

// Validate checks the rules, fills in defaults (Skill, a first step) and
// prepares Encoded.
func (p *Policy) Validate() error {
	if len(p.Requirements) > MaxRequirements {
		return fmt.Errorf("more than %d match rules", MaxRequirements)
	}
	if len(p.Priorities) > MaxPriorities {
		return fmt.Errorf("more than %d priority rules", MaxPriorities)
	}
	for i := range p.Requirements {
		r := &p.Requirements[i]
		if err := checkName("attr", r.Attr); err != nil {
			return fmt.Errorf("match rule %d: %w", i+1, err)
		}
		if r.Skill == "" {
			r.Skill = r.Attr
		}
		if err := checkName("skill", r.Skill); err != nil {
			return fmt.Errorf("match rule %d: %w", i+1, err)
		}
		if len(r.Steps) == 0 {
			r.Steps = []Step{{After: 0, Level: 1}}
		}
		if len(r.Steps) > MaxSteps {
			return fmt.Errorf("match rule %d: more than %d steps", i+1, MaxSteps)
		}
		for j, s := range r.Steps {
			switch {
			case j == 0 && s.After != 0:
				return fmt.Errorf("match rule %d: the first step must start at 0s", i+1)
			case j > 0 && s.After <= r.Steps[j-1].After:
				return fmt.Errorf("match rule %d: step %d must start later than step %d", i+1, j+1, j)
			case s.Level < 0 || s.Level > MaxLevel:
				return fmt.Errorf("match rule %d: step %d: level %d is out of range (0 to %d)", i+1, j+1, s.Level, MaxLevel)
			case j > 0 && s.Level > r.Steps[j-1].Level:
				return fmt.Errorf("match rule %d: step %d raises the level; steps may only widen the match", i+1, j+1)
			case s.After > 24*time.Hour:
				return fmt.Errorf("match rule %d: step %d starts after more than 24h", i+1, j+1)
			}
		}
	}
	for i, r := range p.Priorities {
		if err := checkName("attr", r.Attr); err != nil {
			return fmt.Errorf("priority rule %d: %w", i+1, err)
		}
		if r.Value == "" || len(r.Value) > MaxValueLen {
			return fmt.Errorf("priority rule %d: value is empty or longer than %d bytes", i+1, MaxValueLen)
		}
		if r.Priority < 1 || r.Priority > MaxPriority {
			return fmt.Errorf("priority rule %d: priority %d is out of range (1 to %d)", i+1, r.Priority, MaxPriority)
		}
	}
	enc, err := p.encode()
	if err != nil {
		return err
	}
	p.encoded = enc
	return nil
}

func checkName(kind, s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("%s is empty or longer than %d bytes", kind, MaxNameLen)
	}
	return nil
}

// level returns the skill level r needs after waiting waited.
func (r *Requirement) level(waited time.Duration) int {
	waited = max(waited, 0) // clocks of different nodes may disagree a little
	lvl := 1
	for _, s := range r.Steps {
		if waited < s.After {
			break
		}
		lvl = s.Level
	}
	return lvl
}

// Eligible reports whether an agent with skills may take a customer with
// attrs who has waited waited.
func (p *Policy) Eligible(attrs map[string]string, skills Skills, waited time.Duration) bool {
	if p == nil {
		return true
	}
	for i := range p.Requirements {
		r := &p.Requirements[i]
		v, ok := attrs[r.Attr]
		if !ok || v == "" {
			continue
		}
		need := r.level(waited)
		if need > 0 && skills[r.Skill][v] < need {
			return false
		}
	}
	return true
}

// Priority returns a customer's priority: the highest of the rules its
// attributes match, or 0.
func (p *Policy) Priority(attrs map[string]string) int {
	if p == nil {
		return 0
	}
	best := 0
	for _, r := range p.Priorities {
		if attrs[r.Attr] == r.Value && r.Priority > best {
			best = r.Priority
		}
	}
	return best
}

// Matches reports whether the policy restricts which agents may take a
// customer at all. Without requirements, any agent serving the queue will do.
func (p *Policy) Matches() bool { return p != nil && len(p.Requirements) > 0 }

// Timed reports whether a customer's eligible agents change as it waits,
// so that placement must be tried again as time passes.
func (p *Policy) Timed() bool {
	if p == nil {
		return false
	}
	return slices.ContainsFunc(p.Requirements, func(r Requirement) bool { return len(r.Steps) > 1 })
}

// Encoded returns the requirements as compact JSON for the Redis store's
// script: [{"a":attr,"s":skill,"st":[[afterMillis,level],...]},...], or ""
// when there are none. It is empty until Validate has run.
func (p *Policy) Encoded() string {
	if p == nil {
		return ""
	}
	return p.encoded
}

type encodedReq struct {
	Attr  string     `json:"a"`
	Skill string     `json:"s"`
	Steps [][2]int64 `json:"st"`
}

func (p *Policy) encode() (string, error) {
	if len(p.Requirements) == 0 {
		return "", nil
	}
	out := make([]encodedReq, len(p.Requirements))
	for i, r := range p.Requirements {
		e := encodedReq{Attr: r.Attr, Skill: r.Skill}
		for _, s := range r.Steps {
			e.Steps = append(e.Steps, [2]int64{s.After.Milliseconds(), int64(s.Level)})
		}
		out[i] = e
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", errors.New("encode routing rules: " + err.Error())
	}
	return string(b), nil
}

// Clone returns a deep copy of p (nil for nil).
func (p *Policy) Clone() *Policy {
	if p == nil {
		return nil
	}
	c := &Policy{Priorities: slices.Clone(p.Priorities), encoded: p.encoded}
	for _, r := range p.Requirements {
		r.Steps = slices.Clone(r.Steps)
		c.Requirements = append(c.Requirements, r)
	}
	return c
}
