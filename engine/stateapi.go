package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/amx-dev/amx/engine/state"
)

// stateAPI serves /api/v1/state: GET lists the entries whose ID starts with
// ?prefix= (all without), DELETE removes them ("the host is fixed, let the
// cooldown go"); a DELETE must give a prefix. Both sit behind the
// webhook's credentials.
func (e *Engine) stateAPI(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	switch r.Method {
	case http.MethodGet:
		entries, err := e.state.List(r.Context(), prefix)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		slices.SortFunc(entries, func(a, b state.Entry) int { return strings.Compare(a.ID, b.ID) })
		if entries == nil {
			entries = []state.Entry{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"backend": e.state.String(), "entries": entries})
	case http.MethodDelete:
		if prefix == "" {
			e.reject(w, http.StatusBadRequest, stageRead, errors.New("give ?prefix= the entries to delete start with, e.g. cooldown/"))
			return
		}
		n, err := e.state.Delete(r.Context(), prefix)
		if err != nil {
			e.stateError("delete", err)
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		e.log.Info("state entries deleted", "prefix", prefix, "deleted", n)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"deleted\":%d}\n", n)
	default:
		w.Header().Set("Allow", "GET, DELETE")
		e.reject(w, http.StatusMethodNotAllowed, stageRead, fmt.Errorf("method %s not allowed: use GET or DELETE", r.Method))
	}
}
