package main

import (
	"context"
	"errors"
)

func runApply(ctx context.Context, a *app, c *invocation) error {
	return errors.New("not yet")
}

func runSecrets(ctx context.Context, a *app, c *invocation) error {
	return errors.New("not yet")
}

func runRotate(ctx context.Context, a *app, c *invocation) error {
	return errors.New("not yet")
}
