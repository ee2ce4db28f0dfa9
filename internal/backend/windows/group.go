package windows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

var _ backend.GroupRunner = (*Backend)(nil)

// groupCall is one op of a group's take-down or bring-up: a script call
// (script, request, and what to do with its result), or, for what is not a
// script (a mirror's emcmd), a call made directly.
type groupCall struct {
	label   string
	script  string
	request any
	after   func(result json.RawMessage) error
	direct  func(ctx context.Context) error
}

// runOne runs one step: a single method of the backend is a group of one,
// so that a step's request, checks and follow-up are written once.
func (b *Backend) runOne(ctx context.Context, op backend.GroupOp) error {
	_, err := b.RunGroup(ctx, []backend.GroupOp{op})
	return err
}

// RunGroup implements backend.GroupRunner: a group's take-down (stop the
// sites, remove the address, release the volume) or bring-up is one
// request to the PowerShell host, with one reply listing what was done.
// A mirrored volume's switchover (emcmd) runs between requests.
func (b *Backend) RunGroup(ctx context.Context, ops []backend.GroupOp) (int, error) {
	calls := make([]groupCall, len(ops))
	for i, op := range ops {
		c, err := b.groupCall(op)
		if err != nil {
			return i, err
		}
		calls[i] = c
	}
	done := 0
	for done < len(calls) {
		if calls[done].direct != nil {
			if err := calls[done].direct(ctx); err != nil {
				return done, err
			}
			done++
			continue
		}
		end := done
		for end < len(calls) && calls[end].direct == nil {
			end++
		}
		n, err := b.runCalls(ctx, calls[done:end])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (b *Backend) groupCall(op backend.GroupOp) (groupCall, error) {
	switch op.Action {
	case "StopSite", "StartSite":
		verb := "stop"
		if op.Action == "StartSite" {
			verb = "start"
		}
		return groupCall{label: fmt.Sprintf("%s site %q", verb, op.Site), script: scriptIISRun,
			request: runRequest{Op: verb, Name: op.Site, Certificates: certificatesOf(b.certs.bindings(op.Site))}}, nil
	case "RemoveAddress":
		b.lease.release(op.Address.IP())
		return groupCall{label: "remove address " + op.Address.CIDR, script: scriptIP, request: ipRequest{Op: "remove", IP: op.Address.IP()}}, nil
	case "AddAddress":
		req, err := b.addRequest(*op.Address)
		if err != nil {
			return groupCall{}, err
		}
		return groupCall{label: "add address " + op.Address.CIDR, script: scriptIP, request: req, after: func(res json.RawMessage) error {
			var added addedAddress
			if err := json.Unmarshal(res, &added); err != nil {
				return fmt.Errorf("decode result: %w", err)
			}
			b.added(req, added)
			return nil
		}}, nil
	case "VolumeOffline":
		id := op.Volume.ID
		if id.Kind != backend.VolumeSharedDisk {
			// A mirror needs nothing here: the next source's
			// SWITCHOVERVOLUME makes this node the locked target.
			return groupCall{direct: func(context.Context) error { return nil }}, nil
		}
		ref := diskRefOf(id)
		return groupCall{label: fmt.Sprintf("take %s offline", id), script: scriptDisk, request: diskRequest{Op: "offline", Disk: &ref}}, nil
	case "VolumeOnline":
		id, root := op.Volume.ID, op.Volume.Root
		switch id.Kind {
		case backend.VolumeMirror:
			return groupCall{direct: func(ctx context.Context) error { return b.switchoverMirror(ctx, id.ID) }}, nil
		case backend.VolumeSharedDisk:
		default:
			return groupCall{}, fmt.Errorf("bring %s online: unknown volume kind: %w", id, backend.ErrUnsupported)
		}
		ref := diskRefOf(id)
		return groupCall{label: fmt.Sprintf("bring %s online", id), script: scriptDisk, request: diskRequest{Op: "online", Disk: &ref, Root: root},
			after: func(res json.RawMessage) error {
				var d wireDisk
				if err := json.Unmarshal(res, &d); err != nil {
					return fmt.Errorf("decode result: %w", err)
				}
				if why := d.usable(root); why != "" {
					return fmt.Errorf("%s: %w", why, backend.ErrUnsupported)
				}
				return nil
			}}, nil
	}
	return groupCall{}, fmt.Errorf("group step %s: %w", op.Action, backend.ErrUnsupported)
}

// runCalls runs script calls in order as one request when the caller
// takes batches (the host), else one by one; it returns how many
// completed.
func (b *Backend) runCalls(ctx context.Context, calls []groupCall) (int, error) {
	bc, ok := b.scripts.(BatchCaller)
	if !ok || len(calls) == 1 {
		for i, c := range calls {
			var res json.RawMessage
			err := runScript(ctx, b.scripts, c.script, c.request, &res)
			if err == nil && c.after != nil {
				err = c.after(res)
			}
			if err != nil {
				return i, fmt.Errorf("%s: %w", c.label, err)
			}
		}
		return len(calls), nil
	}
	items := make([]ScriptRequest, len(calls))
	for i, c := range calls {
		req, err := json.Marshal(c.request)
		if err != nil {
			return 0, fmt.Errorf("encode request for %s: %w", c.script, err)
		}
		items[i] = ScriptRequest{Script: c.script, Request: req}
	}
	reply, err := bc.CallBatch(ctx, items)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", calls[0].label, err)
	}
	env, err := parseEnvelope(reply)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", calls[0].label, err)
	}
	var results list[json.RawMessage]
	if len(env.Result) > 0 && string(env.Result) != "null" {
		if err := json.Unmarshal(env.Result, &results); err != nil {
			return 0, fmt.Errorf("%s: decode the batch's results: %w", calls[0].label, err)
		}
	}
	done := min(max(env.Done, 0), len(calls))
	if env.OK {
		done = len(calls)
	}
	for i := range done {
		if calls[i].after == nil {
			continue
		}
		var res json.RawMessage
		if i < len(results) {
			res = results[i]
		}
		if err := calls[i].after(res); err != nil {
			return i, fmt.Errorf("%s: %w", calls[i].label, err)
		}
	}
	if env.OK {
		return done, nil
	}
	failed := calls[min(done, len(calls)-1)]
	if env.Error == nil {
		return done, fmt.Errorf("%s: %w", failed.label, errors.New("failed without saying why"))
	}
	return done, fmt.Errorf("%s: %w", failed.label, env.Error.asError())
}
