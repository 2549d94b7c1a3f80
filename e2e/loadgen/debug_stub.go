package loadgen

import (
	"context"
	"io"
)

func cmdDebug(ctx context.Context, args []string, stdout, stderr io.Writer) int { return ExitUsage }
