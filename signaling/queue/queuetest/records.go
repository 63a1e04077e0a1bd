package queuetest

// Checks of the roles that stand apart from placement: CallRecords,
// Subjects and Marks. Each takes only its role, so it shows what that role
// alone promises.

import (
	"context"
	"testing"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

func runCallRecords(t *testing.T, s queue.CallRecords) {
	ctx := context.Background()
	rec := queue.CallRecord{Call: "room-1", Host: "n2", ResumeKey: "rk"}
	if err := s.SaveCall(ctx, orgA, "c1", rec); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.LookupCall(ctx, orgA, "c1"); err != nil || !ok || got != rec {
		t.Fatalf("LookupCall = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := s.LookupCall(ctx, orgB, "c1"); ok || err != nil {
		t.Fatalf("LookupCall in another org = %v, %v", ok, err)
	}
	// An ended call's record replaces the live one.
	rec.Ended = "peer_left"
	if err := s.SaveCall(ctx, orgA, "c1", rec); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.LookupCall(ctx, orgA, "c1"); err != nil || !ok || got != rec {
		t.Fatalf("LookupCall of an ended call = %+v, %v, %v", got, ok, err)
	}
	if err := s.DeleteCall(ctx, orgA, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LookupCall(ctx, orgA, "c1"); ok || err != nil {
		t.Fatalf("LookupCall after DeleteCall = %v, %v", ok, err)
	}
	if err := s.DeleteCall(ctx, orgA, "nobody"); err != nil {
		t.Fatal(err)
	}
}

func runSubjects(t *testing.T, s queue.Subjects) {
	ctx := context.Background()
	hold := func(org, subject, prev, session string, want bool) {
		t.Helper()
		ok, err := s.HoldSubject(ctx, org, subject, prev, session)
		if err != nil || ok != want {
			t.Fatalf("HoldSubject(%s, %s, %q -> %s) = %v, %v; want %v", org, subject, prev, session, ok, err, want)
		}
	}
	holder := func(org, subject, want string) {
		t.Helper()
		got, err := s.SubjectHolder(ctx, org, subject)
		if err != nil || got != want {
			t.Fatalf("SubjectHolder(%s, %s) = %q, %v; want %q", org, subject, got, err, want)
		}
	}
	holder(orgA, "s1", "")
	hold(orgA, "s1", "", "c1", true)
	holder(orgA, "s1", "c1")
	hold(orgA, "s1", "", "c2", false) // c1 holds it
	hold(orgA, "s1", "c9", "c2", false)
	holder(orgA, "s1", "c1")
	hold(orgA, "s1", "c1", "c2", true)
	holder(orgA, "s1", "c2")
	hold(orgA, "s1", "c2", "c2", true) // taken again by its holder
	holder(orgB, "s1", "")             // organizations apart
	holder(orgA, "s2", "")
}

func runMarks(t *testing.T, s queue.Marks) {
	ctx := context.Background()
	if ok, err := s.Marked(ctx, "n1"); err != nil || ok {
		t.Fatalf("Marked before Mark = %v, %v", ok, err)
	}
	if err := s.Mark(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Marked(ctx, "n1"); err != nil || !ok {
		t.Fatalf("Marked after Mark = %v, %v", ok, err)
	}
	if ok, err := s.Marked(ctx, "n2"); err != nil || ok {
		t.Fatalf("another node Marked = %v, %v", ok, err)
	}
}
