package signaling

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// DevTokenHandler serves GET ?role=customer|agent|supervisor with a fresh token of the
// demo organization, so the demo pages work without an organization backend.
// A customer's token carries record_consent with &consent=1 (the demo
// queue records only those calls).
// Mount it only in development mode: anyone who can reach it can join.
func DevTokenHandler(org *auth.Org, ttl time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		role := r.URL.Query().Get("role")
		var name string
		switch role {
		case protocol.RoleCustomer:
			name = fmt.Sprintf("Visitor %03d", rand.IntN(1000))
		case protocol.RoleAgent:
			name = fmt.Sprintf("Agent %03d", rand.IntN(1000))
		case protocol.RoleSupervisor:
			name = fmt.Sprintf("Supervisor %03d", rand.IntN(1000))
		default:
			http.Error(w, `role must be "customer", "agent" or "supervisor"`, http.StatusBadRequest)
			return
		}
		now := time.Now()
		claims := auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{Subject: "demo-" + randomID(6)},
			Role:             role,
			Name:             name,
		}
		switch r.URL.Query().Get("consent") {
		case "", "0":
		case "1":
			if role != protocol.RoleCustomer {
				http.Error(w, "consent is for customers", http.StatusBadRequest)
				return
			}
			claims.RecordConsent = true
		default:
			http.Error(w, `consent must be "1" or "0"`, http.StatusBadRequest)
			return
		}
		tok, err := auth.Mint(org, claims, ttl, now)
		if err != nil {
			http.Error(w, "could not mint a token", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"token":     tok,
			"expiresAt": now.Add(ttl).UTC().Format(time.RFC3339),
		})
	})
}
