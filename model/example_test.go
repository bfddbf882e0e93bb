package model_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/lbtune/lbtune/model"
)

// ExampleSelectK fits mixtures with k = 1..4 to two one-dimensional groups,
// keeps the lowest BIC, and asks about new points.
func ExampleSelectK() {
	rng := rand.New(rand.NewPCG(1, 2))
	x := mat.NewDense(1000, 1, nil)
	for i := 0; i < 1000; i++ {
		centre := 0.0
		if i%4 == 0 {
			centre = 10 // a quarter of the points
		}
		x.Set(i, 0, centre+rng.NormFloat64())
	}
	sel, err := model.SelectK(context.Background(), x, 1, 4, model.FitConfig{}, rand.NewPCG(7, 7), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	g := sel.Best.GMM
	fmt.Println("k:", sel.K)
	high := g.Predict([]float64{10})
	fmt.Printf("weight of the cluster at 10: %.2f\n", g.Weights[high])
	fmt.Printf("p(cluster | 9.5): %.3f\n", g.Posteriors([]float64{9.5}, nil)[high])
	fmt.Println("OOD(2):", g.OOD([]float64{2}), "OOD(5):", g.OOD([]float64{5}), "OOD(40):", g.OOD([]float64{40}))
	// Output:
	// k: 2
	// weight of the cluster at 10: 0.25
	// p(cluster | 9.5): 1.000
	// OOD(2): false OOD(5): true OOD(40): true
}
