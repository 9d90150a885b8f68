package proxy

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
)

// keyRecord is the verified key of the request (requireKey ran).
func keyRecord(c *echo.Context) apikey.Record {
	rec, _ := c.Get(ctxKey).(apikey.Record)
	return rec
}

// checkScope refuses a request for a model its key may not use: 403
// model_not_allowed, rendered in the route's API family. modelID must be
// the resolved flm:// id (gateway.Target.ID), never the name the client
// sent: a bare name, the ":latest" alias and the full id of one model are
// then judged alike, so a scope cannot be bypassed by naming the model
// differently. A key without scopes costs one length check.
//
// The message does not name the resolved model: a scoped key must not
// learn which engine serves a bare name it may not use.
func (s *Server) checkScope(c *echo.Context, rec apikey.Record, modelID string) error {
	if len(rec.Models) == 0 || rec.AllowsModel(modelID) {
		return nil
	}
	ip, detail := auditWho(c, "model_not_allowed")
	s.audit.record(AuditEvent{Type: "model_not_allowed", Severity: "medium", IP: ip, KeyID: rec.ID, Endpoint: auditPath(c),
		RequestID: requestID(c), Status: http.StatusForbidden, At: time.Now(), Detail: detail})
	e := newError(http.StatusForbidden, typeForbidden, "model_not_allowed", "this API key may not use this model; GET /v1/models (or /api/tags) lists the models it may use")
	e.Param = "model"
	return e
}

// visibleModels are the models of the catalog the key may use, in the
// catalog's order. A key without scopes sees the catalog itself (no copy).
func visibleModels(rec apikey.Record, models []engine.Model) []engine.Model {
	if len(rec.Models) == 0 {
		return models
	}
	out := make([]engine.Model, 0, len(models))
	for _, m := range models {
		if rec.AllowsModel(m.ID) {
			out = append(out, m)
		}
	}
	return out
}
