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

// The agent's rules. Every decision of the agent names in its reason the
// rule that set the pool's size ("scale out 3 -> 5 (rule out-forecast):
// forecast ...") and, when the weights change or are held, the weight
// rule; AgentRules says what each one is.
const (
	RuleOutBreach   = "out-breach"
	RuleOutForecast = "out-forecast"
	RuleHoldP95     = "hold-p95"
	RuleHoldWindow  = "hold-window"
	RuleHoldRising  = "hold-rising"
	RuleInWindow    = "in-window"
	RuleKeepPlan    = "keep-plan"
	RuleKeepUnknown = "keep-unknown"
	RuleWeightShift = "weight-shift"
	RuleWeightReset = "weight-reset"
	RuleWeightDwell = "weight-dwell"
)

// AgentRule is one of the agent's rules: its id, as decision reasons name
// it, and what it does.
type AgentRule struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// AgentRules are the agent's rules in the order it applies them: the first
// server rule that holds sets the pool's size, then the weight rules.
var AgentRules = []AgentRule{
	{RuleKeepUnknown, "keep the pool while the service rate or the p95 target is unknown"},
	{RuleOutBreach, "observed p95 above breach_p95 x target: plan the most cautious level; scale out to that plan when it needs more servers"},
	{RuleOutForecast, "scale out to the plan when the forecast (+ the level's sigmas) needs more servers than the pool has (plan_gap > 0)"},
	{RuleHoldP95, "no scale-in while the observed p95 is above hold_p95 x target (an imputed p95: at least 1.1 x an idle server's)"},
	{RuleHoldWindow, "no scale-in before a whole scale-in window has been observed"},
	{RuleHoldRising, "no scale-in while the rate is rising"},
	{RuleInWindow, "scale in to the largest plan of the scale-in window when it is below the pool (scale_in_gap < 0)"},
	{RuleKeepPlan, "keep the pool: it is what the forecast plan needs"},
	{RuleWeightShift, "shift a step of weight from the slowest to the fastest server when the learned values of the load state prefer it, within 0.8-1.25 of each server's square-root-rule share when the capacities are known"},
	{RuleWeightReset, "reset the weights to capacity-proportional when the learned values of the load state prefer it"},
	{RuleWeightDwell, "no weight change before weight_dwell requests per server have been served since the last one"},
}

// Moves are what a decision does to the pool: the classes the explanation
// is fitted and scored on. A decision has a server move (keep, scale-out
// or scale-in) and, independently, changes the weights or not.
const (
	MoveKeep     = iota // the pool keeps its size
	MoveScaleOut        // more servers
	MoveScaleIn         // fewer servers
	MoveWeights         // new weights (whatever the size)
	numMoves
)

// MoveNames name the moves, indexed by move.
var MoveNames = []string{"keep", "scale-out", "scale-in", "weights"}

// SampleMove is the sampled decision's server move: MoveScaleOut,
// MoveScaleIn or MoveKeep (whether it changed the weights is s.Weights).
func SampleMove(s Sample) int {
	switch keep := rlActionClass(0); {
	case s.Action > keep:
		return MoveScaleOut
	case s.Action < keep:
		return MoveScaleIn
	}
	return MoveKeep
}

// PolicyTree is the agent's policy distilled into shallow decision trees
// over real-unit features, one per move (scale-out, scale-in, weights):
// what an operator reads as rules. A decision is predicted to scale out
// when the scale-out tree says so, else to scale in when that tree does,
// else to keep its size; and to change the weights when the weights tree
// says so.
type PolicyTree struct {
	// Rules are the leaves that predict a move, as "scale-out when ..."
	// lines, tree by tree, then the "keep otherwise" line.
	Rules []string `json:"rules"`
	// Agreement is the share of held-out decisions on which the trees
	// predict the agent's server move and whether it changes the weights
	// (decisions replayed on recordings left out: Sample.Replayed).
	Agreement float64 `json:"agreement"`
	// Baseline is the agreement of always predicting the most common
	// server move with the most common weight decision.
	Baseline float64 `json:"baseline"`
	// ChangeAgreement is the agreement on the held-out decisions that
	// changed the pool's size (where "keep" is wrong).
	ChangeAgreement float64 `json:"change_agreement"`
	// MoveAgreement is the agreement on the held-out moves: decisions that
	// changed the pool's size, and (replayed ones included) its weights.
	MoveAgreement float64 `json:"move_agreement"`
	// Classes is the agreement on the held-out decisions of each move:
	// keep, scale-out and scale-in are the server move of the decisions
	// not replayed, weights the weight change of all.
	Classes []ClassAgreement `json:"classes"`
	// Features are the features the trees could split on (older stores
	// saved fewer: SampleFeatures).
	Features []string `json:"features"`
	// Train and Test are the numbers of samples fitted (summed over the
	// trees) and held out; Replayed and TestReplayed how many of all and
	// of the held-out samples were replayed.
	Train        int `json:"train"`
	Test         int `json:"test"`
	Replayed     int `json:"replayed"`
	TestReplayed int `json:"test_replayed"`
	Depth        int `json:"depth"`
}

// ClassAgreement is how well the explanation agrees with the agent on the
// held-out decisions of one move.
type ClassAgreement struct {
	Class string `json:"class"`
	// Decisions is the number of held-out decisions the agent made of this
	// move; Agreed how many of them the trees predicted as this move.
	Decisions int `json:"decisions"`
	Agreed    int `json:"agreed"`
	// Agreement is Agreed / Decisions (0 without decisions).
	Agreement float64 `json:"agreement"`
	// Predicted is the number of held-out decisions the trees predicted as
	// this move (Agreed / Predicted is the precision).
	Predicted int `json:"predicted"`
}

// rlMinPositives is the fewest fitted decisions of a move its tree needs;
// with fewer the move is never predicted.
const rlMinPositives = 3

// Distil fits one CART tree of at most depth levels (golearn's Gini
// classifier) per move to the agent's decision samples: scale-out and
// scale-in (each against every other server move) on the samples not
// replayed, weights (changed or not) on all. Each is fitted on a random
// (1 - holdout) share of every kind of sample (server move, weight
// change, replayed) and scored on the rest, overall and per move, as they
// come (unbalanced). A tree is fitted on all of its move's samples and at
// most rlBalanceRatio times as many others, so a rare move is learned
// instead of drowned by "keep"; at most maxFit samples per tree (golearn's
// CART tries every distinct value of every feature as a split).
func Distil(samples []Sample, depth int, holdout float64, maxFit int, seed uint64) (*PolicyTree, error) {
	if len(samples) < 20 {
		return nil, fmt.Errorf("distil policy: %d samples: %w", len(samples), ErrFewSamples)
	}
	nf := len(SampleFeatures)
	for _, s := range samples {
		nf = min(nf, len(s.Features))
	}
	if nf == 0 {
		return nil, fmt.Errorf("distil policy: samples without features: %w", ErrFewSamples)
	}
	rng := rand.New(rand.NewPCG(seed, 0xd15))
	moves := make([]int, len(samples))
	pt := &PolicyTree{Depth: depth, Features: SampleFeatures[:nf]}
	for i, s := range samples {
		moves[i] = SampleMove(s)
		if s.Replayed {
			pt.Replayed++
		}
	}
	weights := func(j int) bool { return samples[j].Weights != WeightKeep }
	// Hold out the same share of every kind of sample, so a rare move is
	// both fitted and tested.
	var test, fit []int
	strata := map[[3]int][]int{}
	var keys [][3]int
	for _, j := range rng.Perm(len(samples)) {
		k := [3]int{moves[j], rlBool(weights(j)), rlBool(samples[j].Replayed)}
		if strata[k] == nil {
			keys = append(keys, k)
		}
		strata[k] = append(strata[k], j)
	}
	for _, k := range keys {
		rows := strata[k]
		n := int(math.Round(holdout * float64(len(rows))))
		if len(rows) > 1 {
			n = max(n, 1)
		}
		test, fit = append(test, rows[:n]...), append(fit, rows[n:]...)
	}
	if len(test) == 0 {
		return nil, fmt.Errorf("distil policy: nothing held out: %w", ErrFewSamples)
	}
	rng.Shuffle(len(fit), func(i, j int) { fit[i], fit[j] = fit[j], fit[i] })
	held, err := rlInstances(samples, test, nf, nil)
	if err != nil {
		return nil, err
	}
	pt.Test = len(test)
	predMove := make([]int, len(test)) // MoveKeep unless a server tree says otherwise
	predW := make([]bool, len(test))
	closed := func(j int) bool { return !samples[j].Replayed }
	for _, mv := range []int{MoveScaleOut, MoveScaleIn, MoveWeights} {
		pos, rows := func(j int) bool { return moves[j] == mv }, rlFilter(fit, closed)
		if mv == MoveWeights {
			pos, rows = weights, fit
		}
		rows = rlBalance(rows, pos, maxFit)
		yes, leaves, err := rlFitMove(samples, rows, pos, nf, depth, held)
		if err != nil {
			return nil, fmt.Errorf("distil policy: %s: %w", MoveNames[mv], err)
		}
		if yes == nil {
			continue // too few of this move to fit
		}
		pt.Train += len(rows)
		for i, y := range yes {
			switch {
			case !y:
			case mv == MoveWeights:
				predW[i] = true
			case predMove[i] == MoveKeep:
				predMove[i] = mv
			}
		}
		for _, l := range leaves {
			pt.Rules = append(pt.Rules, MoveNames[mv]+" when "+rlConds(l.conds, pt.Features))
		}
	}
	pt.Rules = append(pt.Rules, "keep otherwise")
	pt.score(samples, test, moves, predMove, predW)
	return pt, nil
}

// rlFitMove fits a binary tree (pos against the rest) on rows and returns
// its prediction for each held-out instance and the leaves that predict
// the move; nil predictions with fewer than rlMinPositives positive rows.
func rlFitMove(samples []Sample, rows []int, pos func(int) bool, nf, depth int, held *base.DenseInstances) ([]bool, []rlLeaf, error) {
	npos := 0
	for _, j := range rows {
		if pos(j) {
			npos++
		}
	}
	if npos < rlMinPositives {
		return nil, nil, nil
	}
	tree := trees.NewDecisionTreeClassifier(trees.GINI, int64(depth), []int64{0, 1})
	train, err := rlInstances(samples, rows, nf, pos)
	if err != nil {
		return nil, nil, err
	}
	if err := tree.Fit(train); err != nil {
		return nil, nil, err
	}
	_, n := held.Size()
	yes := make([]bool, n)
	if tree.RootNode == nil {
		return yes, nil, nil
	}
	for i, p := range tree.Predict(held) {
		yes[i] = p == 1
	}
	var leaves []rlLeaf
	for _, l := range rlWalk(tree.RootNode, nil) {
		if l.label == 1 {
			leaves = append(leaves, l)
		}
	}
	return yes, leaves, nil
}

// score sets pt's agreement figures from the held-out samples test (their
// server moves and whether they changed the weights) and the trees'
// predictions of them: the server moves and the overall agreement over
// the decisions not replayed, the weight changes over all.
func (pt *PolicyTree) score(samples []Sample, test, moves, predMove []int, predW []bool) {
	var tMove, pMove, tW, pW []int
	kinds := map[[2]int]int{} // held-out decisions by (server move, weights changed)
	agreed := 0
	for i, j := range test {
		w := rlBool(samples[j].Weights != WeightKeep)
		tW, pW = append(tW, w), append(pW, rlBool(predW[i]))
		if samples[j].Replayed {
			pt.TestReplayed++
			continue
		}
		tMove, pMove = append(tMove, moves[j]), append(pMove, predMove[i])
		kinds[[2]int{moves[j], w}]++
		if moves[j] == predMove[i] && w == rlBool(predW[i]) {
			agreed++
		}
	}
	server := rlAgreement(tMove, pMove, MoveNames[:MoveWeights])
	wc := rlAgreement(tW, pW, []string{"weights kept", MoveNames[MoveWeights]})
	pt.Classes = append(server, wc[1])
	if n := len(tMove); n > 0 {
		top := 0
		for _, c := range kinds {
			top = max(top, c)
		}
		pt.Agreement, pt.Baseline = float64(agreed)/float64(n), float64(top)/float64(n)
	}
	var size ClassAgreement
	rlAdd(&size, server[MoveScaleOut])
	rlAdd(&size, server[MoveScaleIn])
	move := size
	rlAdd(&move, wc[1])
	pt.ChangeAgreement, pt.MoveAgreement = size.Agreement, move.Agreement
}

// rlBool is 1 for true, 0 for false.
func rlBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rlFilter returns the rows for which keep holds.
func rlFilter(rows []int, keep func(int) bool) []int {
	var out []int
	for _, j := range rows {
		if keep(j) {
			out = append(out, j)
		}
	}
	return out
}

// rlAgreement counts, for each class c (named by names), the decisions of
// truth in c, how many of them pred has in c too, and how many pred puts
// in c. truth and pred are class indices of the same decisions.
func rlAgreement(truth, pred []int, names []string) []ClassAgreement {
	if len(truth) != len(pred) {
		panic("agent: agreement of unequal lengths")
	}
	out := make([]ClassAgreement, len(names))
	for c := range out {
		out[c].Class = names[c]
	}
	for i, t := range truth {
		out[t].Decisions++
		out[pred[i]].Predicted++
		if pred[i] == t {
			out[t].Agreed++
		}
	}
	for c := range out {
		if out[c].Decisions > 0 {
			out[c].Agreement = float64(out[c].Agreed) / float64(out[c].Decisions)
		}
	}
	return out
}

// rlAdd adds class c's counts to sum and recomputes sum's agreement.
func rlAdd(sum *ClassAgreement, c ClassAgreement) {
	sum.Decisions += c.Decisions
	sum.Agreed += c.Agreed
	sum.Predicted += c.Predicted
	if sum.Decisions > 0 {
		sum.Agreement = float64(sum.Agreed) / float64(sum.Decisions)
	}
}

// rlBalanceRatio caps the other decisions a move's tree is fitted on at
// this many times the move's own.
const rlBalanceRatio = 10

// rlBalance returns rows with every positive row (pos) and at most
// rlBalanceRatio times as many others, in rows' order, and at most maxFit
// rows in all (when positive; positives first, so a rare move keeps all of
// its decisions), so the tree learns when the agent makes the move instead
// of predicting "no move" everywhere.
func rlBalance(rows []int, pos func(int) bool, maxFit int) []int {
	npos := 0
	for _, j := range rows {
		if pos(j) {
			npos++
		}
	}
	limit := rlBalanceRatio * npos
	if maxFit > 0 {
		npos = min(npos, maxFit)
		limit = min(limit, maxFit-npos)
	}
	out := make([]int, 0, npos+limit)
	kept, neg := 0, 0
	for _, j := range rows {
		switch {
		case pos(j) && kept < npos:
			kept++
			out = append(out, j)
		case !pos(j) && neg < limit:
			neg++
			out = append(out, j)
		}
	}
	return out
}

// rlInstances builds golearn instances of the chosen samples: one float
// attribute for each of the first nf features and the class as a float
// class attribute: 1 where class(j) holds, else 0 (0 for all when class
// is nil, for prediction).
func rlInstances(samples []Sample, rows []int, nf int, class func(int) bool) (*base.DenseInstances, error) {
	inst := base.NewDenseInstances()
	specs := make([]base.AttributeSpec, nf)
	for i, name := range SampleFeatures[:nf] {
		specs[i] = inst.AddAttribute(base.NewFloatAttribute(name))
	}
	attr := base.NewFloatAttribute("move")
	cspec := inst.AddAttribute(attr)
	if err := inst.AddClassAttribute(attr); err != nil {
		return nil, fmt.Errorf("distil policy: %w", err)
	}
	if err := inst.Extend(len(rows)); err != nil {
		return nil, fmt.Errorf("distil policy: %w", err)
	}
	for r, j := range rows {
		for i, v := range samples[j].Features[:nf] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			inst.Set(specs[i], r, base.PackFloatToBytes(v))
		}
		y := 0.0
		if class != nil && class(j) {
			y = 1
		}
		inst.Set(cspec, r, base.PackFloatToBytes(y))
	}
	return inst, nil
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

// rlLeaf is one leaf of a tree: the splits on the way to it and its label.
type rlLeaf struct {
	conds []rlCond
	label int64
}

// rlWalk lists the leaves of the subtree at node (golearn's CART node,
// whose type is unexported: it is read by reflection).
func rlWalk(node any, path []rlCond) []rlLeaf {
	n, ok := rlNodeOf(node)
	if !ok {
		return nil
	}
	var out []rlLeaf
	lc := append(append([]rlCond(nil), path...), rlCond{feature: n.feature, v: n.threshold})
	if n.left != nil {
		out = append(out, rlWalk(n.left, lc)...)
	} else {
		out = append(out, rlLeaf{lc, n.leftLabel})
	}
	rc := append(append([]rlCond(nil), path...), rlCond{feature: n.feature, ge: true, v: n.threshold})
	if n.right != nil {
		out = append(out, rlWalk(n.right, rc)...)
	} else {
		out = append(out, rlLeaf{rc, n.rightLabel})
	}
	return out
}

// rlConds renders the splits to one leaf: per feature (named by names)
// only the tightest lower and upper bound.
func rlConds(conds []rlCond, names []string) string {
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
		if f >= 0 && int(f) < len(names) {
			name = names[f]
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
	return strings.Join(parts, " and ")
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
