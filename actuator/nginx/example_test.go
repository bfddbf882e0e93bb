package nginx_test

import (
	"os"
	"time"

	"github.com/lbtune/lbtune/actuator/nginx"
)

func ExampleRenderUpstreams() {
	ups := []nginx.Upstream{{
		Name: "web", Zone: "64k", Method: "least_conn",
		Servers: []nginx.UpstreamServer{
			{Address: "10.0.1.17:8080", Weight: 5, MaxFails: 2, FailTimeout: 5 * time.Second},
			{Address: "10.0.1.18:8080", Name: "i-0abc", Weight: 1, Down: true},
		},
	}}
	if err := nginx.RenderUpstreams(os.Stdout, ups); err != nil {
		panic(err)
	}
	// Output:
	// # Managed by lbtune: this file is rewritten on every change, do not edit it.
	//
	// upstream web {
	//     zone web 64k;
	//     least_conn;
	//     server 10.0.1.17:8080 weight=5 max_fails=2 fail_timeout=5s;
	//     server 10.0.1.18:8080 weight=1 down; # i-0abc
	// }
}
