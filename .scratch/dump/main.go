package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

func main() {
	st, err := datasets.OpenReadOnly(os.Args[1])
	if err != nil {
		panic(err)
	}
	n := 0
	_ = st.Range("sim:p5", time.Time{}, time.Time{}, func(s collector.Snapshot) error {
		n++
		if n == 100 {
			b, _ := json.Marshal(s)
			fmt.Println(string(b))
		}
		return nil
	})
}
