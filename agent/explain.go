package agent

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"

	"github.com/sjwhitworth/golearn/base"
	"github.com/sjwhitworth/golearn/trees"
)

// ErrFewSamples is returned by Distil when there are too few samples to
// fit and test a tree.
var ErrFewSamples = errors.New("too few decision samples")

// PolicyTree is the agent's policy distilled into a shallow decision tree
// over real-unit features: what an operator reads as rules.
type PolicyTree struct {
	// Rules are the tree's leaves as "if ... then ..." lines, in tree order.
	Rules []string `json:"rules"`
	// Agreement is the share of held-out decisions on which the tree
	// predicts the agent's action class.
	Agreement float64 `json:"agreement"`
	// Baseline is the agreement of always predicting the most common class.
	Baseline float64 `json:"baseline"`
	// ChangeAgreement is the agreement on the held-out decisions that
	// changed the pool's size (where "keep" is wrong).
	ChangeAgreement float64 `json:"change_agreement"`
	// Train and Test are the numbers of samples fitted and held out.
	Train int `json:"train"`
	Test  int `json:"test"`
	Depth int `json:"depth"`
}

// Distil fits a CART tree of at most depth levels (golearn's Gini
// classifier) to the agent's decision samples (features SampleFeatures,
// classes ActionClasses) on a random (1 - holdout) share, with the most
// common class capped at 3 times all others, and measures its
// agreement with the agent on the rest (as they come, unbalanced). At most maxFit samples are fitted
// (golearn's CART tries every distinct value of every feature as a split).
func Distil(samples []Sample, depth int, holdout float64, maxFit int, seed uint64) (*PolicyTree, error) {
	if len(samples) < 20 {
		return nil, fmt.Errorf("distil policy: %d samples: %w", len(samples), ErrFewSamples)
	}
	rng := rand.New(rand.NewPCG(seed, 0xd15))
	idx := rng.Perm(len(samples))
	nTest := max(int(holdout*float64(len(samples))), 1)
	test, fit := idx[:nTest], idx[nTest:]
	fit = rlBalance(samples, fit)
	if maxFit > 0 && len(fit) > maxFit {
		fit = fit[:maxFit]
	}
	labels := make([]int64, len(ActionClasses))
	for i := range labels {
		labels[i] = int64(i)
	}
	tree := trees.NewDecisionTreeClassifier(trees.GINI, int64(depth), labels)
	train, err := rlInstances(samples, fit)
	if err != nil {
		return nil, err
	}
	if err := tree.Fit(train); err != nil {
		return nil, fmt.Errorf("distil policy: %w", err)
	}
	held, err := rlInstances(samples, test)
	if err != nil {
		return nil, err
	}
	pred := tree.Predict(held)
	counts := make([]int, len(ActionClasses))
	agree, changes, changeAgree := 0, 0, 0
	for i, j := range test {
		hit := int(pred[i]) == samples[j].Action
		if hit {
			agree++
		}
		if samples[j].Action != rlActionClass(0) {
			changes++
			if hit {
				changeAgree++
			}
		}
		counts[samples[j].Action]++
	}
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	pt := &PolicyTree{Agreement: float64(agree) / float64(len(test)), Baseline: float64(top) / float64(len(test)),
		Train: len(fit), Test: len(test), Depth: depth}
	if changes > 0 {
		pt.ChangeAgreement = float64(changeAgree) / float64(changes)
	}
	if tree.RootNode != nil {
		pt.Rules = rlRules(tree.RootNode)
	}
	return pt, nil
}

// rlBalanceRatio caps the most common class at this many times the others.
const rlBalanceRatio = 3

// rlBalance caps the most common action class (the pool mostly keeps its
// size) at rlBalanceRatio times the number of all other samples, so the
// tree learns when the agent changes the pool instead of predicting "keep"
// everywhere.
func rlBalance(samples []Sample, rows []int) []int {
	counts := make([]int, len(ActionClasses))
	for _, j := range rows {
		counts[samples[j].Action]++
	}
	top := 0
	for c := range counts {
		if counts[c] > counts[top] {
			top = c
		}
	}
	others := len(rows) - counts[top]
	limit := rlBalanceRatio * others
	if others == 0 || counts[top] <= limit {
		return rows
	}
	out := make([]int, 0, limit+others)
	kept := 0
	for _, j := range rows {
		if samples[j].Action == top {
			if kept >= limit {
				continue
			}
			kept++
		}
		out = append(out, j)
	}
	return out
}

// rlInstances builds golearn instances of the chosen samples: one float
// attribute per feature and the action class as a float class attribute.
func rlInstances(samples []Sample, rows []int) (*base.DenseInstances, error) {
	inst := base.NewDenseInstances()
	specs := make([]base.AttributeSpec, len(SampleFeatures))
	for i, name := range SampleFeatures {
		specs[i] = inst.AddAttribute(base.NewFloatAttribute(name))
	}
	class := base.NewFloatAttribute("action")
	cspec := inst.AddAttribute(class)
	if err := inst.AddClassAttribute(class); err != nil {
		return nil, fmt.Errorf("distil policy: %w", err)
	}
	if err := inst.Extend(len(rows)); err != nil {
		return nil, fmt.Errorf("distil policy: %w", err)
	}
	for r, j := range rows {
		for i, v := range samples[j].Features {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			inst.Set(specs[i], r, base.PackFloatToBytes(v))
		}
		inst.Set(cspec, r, base.PackFloatToBytes(float64(samples[j].Action)))
	}
	return inst, nil
}

// rlRules turns the tree under node (golearn's CART node, whose type is
// unexported: it is read by reflection) into rules.
func rlRules(node any) []string {
	return rlWalk(node, nil)
}

// rlNode is what the rules need of one golearn CART node.
type rlNode struct {
	left, right           any
	threshold             float64
	feature               int64
	leftLabel, rightLabel int64
}

// rlNodeOf reads a golearn CART node pointer through its exported fields.
func rlNodeOf(node any) (rlNode, bool) {
	v := reflect.ValueOf(node)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return rlNode{}, false
	}
	v = v.Elem()
	child := func(name string) any {
		f := v.FieldByName(name)
		if !f.IsValid() || f.IsNil() {
			return nil
		}
		return f.Interface()
	}
	num := func(name string) (float64, int64) {
		f := v.FieldByName(name)
		switch f.Kind() {
		case reflect.Float64:
			return f.Float(), 0
		case reflect.Int64:
			return 0, f.Int()
		}
		return 0, 0
	}
	n := rlNode{left: child("Left"), right: child("Right")}
	n.threshold, _ = num("Threshold")
	_, n.feature = num("Feature")
	_, n.leftLabel = num("LeftLabel")
	_, n.rightLabel = num("RightLabel")
	return n, true
}

// rlCond is one split on the way to a leaf: feature < v, or >= v when ge.
type rlCond struct {
	feature int64
	ge      bool
	v       float64
}

// rlWalk lists the rules of the subtree at node.
func rlWalk(node any, path []rlCond) []string {
	n, ok := rlNodeOf(node)
	if !ok {
		return nil
	}
	var out []string
	lc := append(append([]rlCond(nil), path...), rlCond{feature: n.feature, v: n.threshold})
	if n.left != nil {
		out = append(out, rlWalk(n.left, lc)...)
	} else {
		out = append(out, rlRule(lc, n.leftLabel))
	}
	rc := append(append([]rlCond(nil), path...), rlCond{feature: n.feature, ge: true, v: n.threshold})
	if n.right != nil {
		out = append(out, rlWalk(n.right, rc)...)
	} else {
		out = append(out, rlRule(rc, n.rightLabel))
	}
	return out
}

// rlRule renders one leaf: per feature only the tightest lower and upper
// bound, then the action.
func rlRule(conds []rlCond, label int64) string {
	type bounds struct {
		lo, hi       float64
		hasLo, hasHi bool
	}
	var order []int64
	b := map[int64]*bounds{}
	for _, c := range conds {
		x := b[c.feature]
		if x == nil {
			x = &bounds{}
			b[c.feature] = x
			order = append(order, c.feature)
		}
		if c.ge && (!x.hasLo || c.v > x.lo) {
			x.lo, x.hasLo = c.v, true
		}
		if !c.ge && (!x.hasHi || c.v < x.hi) {
			x.hi, x.hasHi = c.v, true
		}
	}
	var parts []string
	for _, f := range order {
		name := "?"
		if f >= 0 && int(f) < len(SampleFeatures) {
			name = SampleFeatures[f]
		}
		x := b[f]
		switch {
		case x.hasLo && x.hasHi:
			parts = append(parts, fmt.Sprintf("%s <= %s < %s", rlNum(x.lo), name, rlNum(x.hi)))
		case x.hasLo:
			parts = append(parts, fmt.Sprintf("%s >= %s", name, rlNum(x.lo)))
		default:
			parts = append(parts, fmt.Sprintf("%s < %s", name, rlNum(x.hi)))
		}
	}
	action := "?"
	if label >= 0 && int(label) < len(ActionClasses) {
		action = ActionClasses[label]
	}
	return strings.Join(parts, " and ") + " -> " + action
}

// rlNum prints a threshold with sensible precision.
func rlNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
