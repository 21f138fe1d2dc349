package report

import (
	"fmt"
	"math"
)

// Status is a check's outcome.
type Status string

// Outcomes of a check.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP" // an input was not measured
)

// Op is a check's comparison.
type Op string

// Comparisons a check can make.
const (
	AtMost  Op = "≤"
	AtLeast Op = "≥"
)

// Check is one target of the issue evaluated on this run's numbers.
type Check struct {
	Name     string  `json:"name"`
	Status   Status  `json:"status"`
	Measured float64 `json:"measured"`
	Op       Op      `json:"op"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit,omitempty"` // appended to numbers: "×", " MB", ...
	Detail   string  `json:"detail"`         // by how much it passed or failed, or why it was skipped
}

// Evaluate compares measured against limit. It reports by how much the value
// is inside or outside the limit, relative to the limit.
func Evaluate(name string, measured float64, op Op, limit float64, unit string) Check {
	c := Check{Name: name, Measured: measured, Op: op, Limit: limit, Unit: unit}
	if math.IsNaN(measured) || math.IsInf(measured, 0) {
		c.Status = Skip
		c.Detail = "measurement is not a finite number"
		return c
	}
	ok := measured <= limit
	if op == AtLeast {
		ok = measured >= limit
	}
	margin := math.Abs(measured-limit) / math.Abs(limit) * 100
	if limit == 0 {
		margin = math.Abs(measured-limit) * 100
	}
	word := "under"
	if measured > limit {
		word = "over"
	}
	if ok {
		c.Status = Pass
	} else {
		c.Status = Fail
	}
	c.Detail = fmt.Sprintf("%s%s %s %s%s: %.0f%% %s the limit", trim(measured), unit, cmpWord(measured, limit), trim(limit), unit, margin, word)
	return c
}

// Ratio evaluates num/den against limit; den ≤ 0 or a missing input skips.
func Ratio(name string, num, den float64, okNum, okDen bool, op Op, limit float64) Check {
	if !okNum || !okDen {
		return Skipped(name, op, limit, "×", "an input was not measured")
	}
	if den <= 0 {
		return Skipped(name, op, limit, "×", fmt.Sprintf("reference value %s is not positive", trim(den)))
	}
	return Evaluate(name, num/den, op, limit, "×")
}

// Skipped records a check that could not be evaluated.
func Skipped(name string, op Op, limit float64, unit, reason string) Check {
	return Check{Name: name, Status: Skip, Op: op, Limit: limit, Unit: unit, Detail: reason}
}

func cmpWord(a, b float64) string {
	switch {
	case a < b:
		return "<"
	case a > b:
		return ">"
	}
	return "="
}

func trim(v float64) string { return fmt.Sprintf("%.3g", v) }
