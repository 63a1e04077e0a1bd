package routing

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Policy{
		Requirements: []Requirement{{Attr: "language", Steps: []Step{{0, 3}, {30 * time.Second, 1}, {time.Minute, 0}}}},
		Priorities:   []PriorityRule{{Attr: "tier", Value: "gold", Priority: 10}},
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok.Requirements[0].Skill != "language" {
		t.Errorf("Skill defaults to Attr; got %q", ok.Requirements[0].Skill)
	}
	if want := `[{"a":"language","s":"language","st":[[0,3],[30000,1],[60000,0]]}]`; ok.Encoded() != want {
		t.Errorf("Encoded = %s, want %s", ok.Encoded(), want)
	}
	if !ok.Timed() || !ok.Matches() {
		t.Error("Timed/Matches false for a widening policy")
	}
	plain := Policy{Requirements: []Requirement{{Attr: "language"}}}
	if err := plain.Validate(); err != nil || len(plain.Requirements[0].Steps) != 1 || plain.Requirements[0].Steps[0].Level != 1 || plain.Timed() {
		t.Errorf("default step: %+v, %v", plain.Requirements[0], err)
	}
	var empty Policy
	if err := empty.Validate(); err != nil || empty.Encoded() != "" || empty.Matches() {
		t.Errorf("empty policy: %v %q", err, empty.Encoded())
	}

	bad := []struct {
		name string
		p    Policy
		want string
	}{
		{"no attr", Policy{Requirements: []Requirement{{}}}, "attr is empty"},
		{"long skill", Policy{Requirements: []Requirement{{Attr: "a", Skill: strings.Repeat("s", 65)}}}, "skill is empty or longer"},
		{"first step late", Policy{Requirements: []Requirement{{Attr: "a", Steps: []Step{{time.Second, 1}}}}}, "first step must start at 0s"},
		{"steps out of order", Policy{Requirements: []Requirement{{Attr: "a", Steps: []Step{{0, 2}, {time.Minute, 1}, {time.Second, 0}}}}}, "step 3 must start later"},
		{"level rises", Policy{Requirements: []Requirement{{Attr: "a", Steps: []Step{{0, 1}, {time.Minute, 2}}}}}, "raises the level"},
		{"level too high", Policy{Requirements: []Requirement{{Attr: "a", Steps: []Step{{0, 11}}}}}, "out of range"},
		{"negative level", Policy{Requirements: []Requirement{{Attr: "a", Steps: []Step{{0, -1}}}}}, "out of range"},
		{"too long a wait", Policy{Requirements: []Requirement{{Attr: "a", Steps: []Step{{0, 1}, {25 * time.Hour, 0}}}}}, "more than 24h"},
		{"priority zero", Policy{Priorities: []PriorityRule{{Attr: "tier", Value: "gold"}}}, "priority 0 is out of range"},
		{"priority too high", Policy{Priorities: []PriorityRule{{Attr: "tier", Value: "gold", Priority: 1000}}}, "out of range"},
		{"priority no value", Policy{Priorities: []PriorityRule{{Attr: "tier", Priority: 1}}}, "value is empty"},
		{"too many", Policy{Requirements: make([]Requirement, MaxRequirements+1)}, "more than 16 match rules"},
	}
	for _, tc := range bad {
		if err := tc.p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestEligible(t *testing.T) {
	p := &Policy{Requirements: []Requirement{
		{Attr: "language", Steps: []Step{{0, 3}, {time.Minute, 1}, {2 * time.Minute, 0}}},
		{Attr: "product", Skill: "products"},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	de := Skills{"language": {"de": 3}, "products": {"billing": 1}}
	weak := Skills{"language": {"de": 1}}
	for _, tc := range []struct {
		name   string
		attrs  map[string]string
		skills Skills
		waited time.Duration
		want   bool
	}{
		{"match", map[string]string{"language": "de", "product": "billing"}, de, 0, true},
		{"no attrs", nil, nil, 0, true},
		{"empty attr value", map[string]string{"language": ""}, nil, 0, true},
		{"other attrs only", map[string]string{"tier": "gold"}, nil, 0, true},
		{"level too low", map[string]string{"language": "de"}, weak, 0, false},
		{"widened to level 1", map[string]string{"language": "de"}, weak, time.Minute, true},
		{"not widened yet", map[string]string{"language": "de"}, weak, time.Minute - time.Millisecond, false},
		{"no skill before any", map[string]string{"language": "fr"}, de, time.Minute, false},
		{"any agent", map[string]string{"language": "fr"}, nil, 2 * time.Minute, true},
		{"second requirement", map[string]string{"language": "de", "product": "phones"}, de, 0, false},
		{"second requirement not widened", map[string]string{"language": "de", "product": "phones"}, de, time.Hour, false},
	} {
		if got := p.Eligible(tc.attrs, tc.skills, tc.waited); got != tc.want {
			t.Errorf("%s: Eligible = %v, want %v", tc.name, got, tc.want)
		}
	}
	var nilPolicy *Policy
	if !nilPolicy.Eligible(map[string]string{"language": "de"}, nil, 0) || nilPolicy.Priority(nil) != 0 || nilPolicy.Timed() {
		t.Error("a nil policy must match anyone, first come first served")
	}
}

func TestPriority(t *testing.T) {
	p := &Policy{Priorities: []PriorityRule{
		{Attr: "tier", Value: "gold", Priority: 10},
		{Attr: "tier", Value: "silver", Priority: 5},
		{Attr: "vip", Value: "yes", Priority: 50},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		attrs map[string]string
		want  int
	}{
		{nil, 0},
		{map[string]string{"tier": "bronze"}, 0},
		{map[string]string{"tier": "silver"}, 5},
		{map[string]string{"tier": "gold", "vip": "yes"}, 50},
		{map[string]string{"tier": "GOLD"}, 0},
	} {
		if got := p.Priority(tc.attrs); got != tc.want {
			t.Errorf("Priority(%v) = %d, want %d", tc.attrs, got, tc.want)
		}
	}
}

func TestSkillsCheck(t *testing.T) {
	good := Skills{"language": {"de": 1, "en": MaxLevel}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Skills{
		"level 0":     {"language": {"de": 0}},
		"level 11":    {"language": {"de": 11}},
		"empty name":  {"": {"de": 1}},
		"empty value": {"language": {"": 1}},
		"long value":  {"language": {strings.Repeat("x", MaxValueLen+1): 1}},
	} {
		if err := s.Check(); err == nil {
			t.Errorf("%s: Check accepted %v", name, s)
		}
	}
}
