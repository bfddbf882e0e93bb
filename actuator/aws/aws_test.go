package aws

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/lbtune/lbtune/actuator"
)

// healthServer is the "instance" the fake gives out: 127.0.0.1:port.
func healthServer(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func fastReadiness(port int) Readiness {
	return Readiness{Port: port, HealthPath: "/healthz", BootTimeout: 5 * time.Second, Poll: 5 * time.Millisecond}
}

func TestEC2(t *testing.T) {
	f, e, _ := newFakeAWS(t)
	f.ip = "127.0.0.1"
	port := healthServer(t)
	p, err := NewEC2(e, map[string]EC2Template{"web": {
		LaunchTemplateID: "lt-0123456789abcdef0", LaunchTemplateVersion: "3", ImageID: "ami-0abcdef1234567890",
		SubnetID: "subnet-12345678", SecurityGroupIDs: []string{"sg-12345678"},
		Tags: map[string]string{"team": "perf"}, Readiness: fastReadiness(port),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	m, err := p.Launch(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1:" + strconv.Itoa(port); m.Addr != want || !m.Healthy || !strings.HasPrefix(m.Name, "i-") {
		t.Errorf("launched %+v, want healthy i-... at %s", m, want)
	}
	run := f.calls("RunInstances")
	if len(run) != 1 {
		t.Fatalf("%d RunInstances calls, want 1", len(run))
	}
	for k, want := range map[string]string{
		"MinCount": "1", "MaxCount": "1", "ImageId": "ami-0abcdef1234567890",
		"LaunchTemplate.LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplate.Version": "3",
		"SubnetId": "subnet-12345678", "SecurityGroupId.1": "sg-12345678",
		"TagSpecification.1.ResourceType": "instance",
		"TagSpecification.1.Tag.1.Key":    PoolTag, "TagSpecification.1.Tag.1.Value": "web",
		"TagSpecification.1.Tag.2.Key": "team", "TagSpecification.1.Tag.2.Value": "perf",
	} {
		if got := run[0].Get(k); got != want {
			t.Errorf("RunInstances %s = %q, want %q", k, got, want)
		}
	}
	// It polled DescribeInstances by id until the instance ran.
	desc := f.calls("DescribeInstances")
	if len(desc) < 2 || desc[0].Get("InstanceId.1") != m.Name {
		t.Errorf("DescribeInstances calls %v, want >= 2 by instance id (pending, then running)", desc)
	}

	ms, err := p.Members(ctx, "web")
	if err != nil || len(ms) != 1 || ms[0].Name != m.Name || !ms[0].Healthy {
		t.Fatalf("Members = %+v, %v", ms, err)
	}
	last := f.calls("DescribeInstances")
	q := last[len(last)-1]
	if q.Get("Filter.1.Name") != "tag:"+PoolTag || q.Get("Filter.1.Value.1") != "web" || q.Get("Filter.2.Name") != "instance-state-name" {
		t.Errorf("Members describe filters = %v", q)
	}

	if err := p.Stop(ctx, "web", m); err != nil {
		t.Fatal(err)
	}
	term := f.calls("TerminateInstances")
	if len(term) != 1 || term[0].Get("InstanceId.1") != m.Name {
		t.Errorf("TerminateInstances calls = %v", term)
	}
	if ms, _ := p.Members(ctx, "web"); len(ms) != 0 {
		t.Errorf("terminated instance still listed: %+v", ms)
	}

	t.Run("refused launch is an error with the API's message", func(t *testing.T) {
		f.failAction, f.failMsg = "RunInstances", "Invalid id: lt-nope"
		defer func() { f.failAction = "" }()
		_, err := p.Launch(ctx, "web")
		if err == nil || !strings.Contains(err.Error(), "Invalid id: lt-nope") {
			t.Errorf("err = %v, want the API's message", err)
		}
	})
	t.Run("instance that never gets healthy is terminated", func(t *testing.T) {
		p2, _ := NewEC2(e, map[string]EC2Template{"web": {ImageID: "ami-1", InstanceType: "t3.micro",
			Readiness: Readiness{Port: 1, HealthPath: "/healthz", BootTimeout: 300 * time.Millisecond, Poll: 10 * time.Millisecond}}})
		before := len(f.calls("TerminateInstances"))
		_, err := p2.Launch(ctx, "web")
		if !errors.Is(err, ErrBootTimeout) {
			t.Fatalf("err = %v, want ErrBootTimeout", err)
		}
		if got := len(f.calls("TerminateInstances")); got != before+1 {
			t.Errorf("TerminateInstances calls %d, want %d: a failed launch must not leave an instance", got, before+1)
		}
	})
	t.Run("unknown pool", func(t *testing.T) {
		if _, err := p.Launch(ctx, "nosuch"); !errors.Is(err, actuator.ErrUnknownPool) {
			t.Errorf("err = %v, want ErrUnknownPool", err)
		}
	})
}

func TestASG(t *testing.T) {
	f, e, a := newFakeAWS(t)
	f.ip = "127.0.0.1"
	port := healthServer(t)
	first := f.addGroupInstance()
	p, err := NewASG(a, e, map[string]ASGTemplate{"web": {Group: "web-asg", Readiness: fastReadiness(port)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Two parallel launches raise the desired capacity to 3, not 2.
	type res struct {
		m   actuator.Member
		err error
	}
	ch := make(chan res, 2)
	for range 2 {
		go func() { m, err := p.Launch(ctx, "web"); ch <- res{m, err} }()
	}
	got := map[string]bool{}
	for range 2 {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.m.Name == first || got[r.m.Name] {
			t.Errorf("launch returned %s twice or the old instance", r.m.Name)
		}
		got[r.m.Name] = true
	}
	set := f.calls("SetDesiredCapacity")
	if len(set) != 2 || set[0].Get("DesiredCapacity") != "2" || set[1].Get("DesiredCapacity") != "3" ||
		set[0].Get("AutoScalingGroupName") != "web-asg" || set[0].Get("HonorCooldown") != "false" {
		t.Errorf("SetDesiredCapacity calls = %v, want 2 then 3 on web-asg without cooldown", set)
	}
	if d := f.calls("DescribeAutoScalingGroups"); len(d) == 0 || d[0].Get("AutoScalingGroupNames.member.1") != "web-asg" {
		t.Errorf("DescribeAutoScalingGroups calls = %v", d)
	}

	ms, err := p.Members(ctx, "web")
	if err != nil || len(ms) != 3 {
		t.Fatalf("Members = %+v, %v; want 3", ms, err)
	}
	for _, m := range ms {
		if !m.Healthy || m.Addr != "127.0.0.1:"+strconv.Itoa(port) {
			t.Errorf("member %+v, want healthy at the private address", m)
		}
	}

	if err := p.Stop(ctx, "web", ms[2]); err != nil {
		t.Fatal(err)
	}
	term := f.calls("TerminateInstanceInAutoScalingGroup")
	if len(term) != 1 || term[0].Get("InstanceId") != ms[2].Name || term[0].Get("ShouldDecrementDesiredCapacity") != "true" {
		t.Errorf("TerminateInstanceInAutoScalingGroup calls = %v", term)
	}
	if f.desired != 2 {
		t.Errorf("desired = %d after terminate with decrement, want 2", f.desired)
	}

	t.Run("unhealthy instance is reported", func(t *testing.T) {
		f.mu.Lock()
		f.instances[first].health = "Unhealthy"
		f.mu.Unlock()
		ms, _ := p.Members(ctx, "web")
		for _, m := range ms {
			if m.Name == first && (m.Healthy || !strings.Contains(m.Reason, "Unhealthy")) {
				t.Errorf("member %+v, want unhealthy", m)
			}
		}
	})
	t.Run("max size is respected", func(t *testing.T) {
		f.max = 2
		defer func() { f.max = 4 }()
		if _, err := p.Launch(ctx, "web"); err == nil || !strings.Contains(err.Error(), "max size 2") {
			t.Errorf("err = %v, want max size refusal", err)
		}
	})
	t.Run("API error carries its message", func(t *testing.T) {
		f.failAction, f.failMsg = "TerminateInstanceInAutoScalingGroup", "Instance Id not found"
		defer func() { f.failAction = "" }()
		if err := p.Stop(ctx, "web", ms[0]); err == nil || !strings.Contains(err.Error(), "Instance Id not found") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestRealAWS runs read-only calls against real AWS when credentials are in
// the environment, and a launch/terminate cycle only when
// LBTUNE_AWS_LAUNCH_TEMPLATE names a launch template (it costs money).
func TestRealAWS(t *testing.T) {
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		t.Skip("no AWS credentials in the environment (AWS_ACCESS_KEY_ID or AWS_PROFILE): skipping the real-AWS test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := ec2.NewFromConfig(cfg)
	tmpl := EC2Template{LaunchTemplateID: os.Getenv("LBTUNE_AWS_LAUNCH_TEMPLATE"), ImageID: "ami-placeholder", InstanceType: "t3.micro",
		Readiness: Readiness{Port: 80, BootTimeout: 10 * time.Minute}}
	p, err := NewEC2(e, map[string]EC2Template{"lbtune-test": tmpl})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Members(ctx, "lbtune-test"); err != nil {
		t.Fatalf("DescribeInstances against real AWS: %v", err)
	}
	if g := os.Getenv("LBTUNE_AWS_ASG"); g != "" {
		a, err := NewASG(autoscaling.NewFromConfig(cfg), e, map[string]ASGTemplate{"asg": {Group: g, Readiness: Readiness{Port: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Members(ctx, "asg"); err != nil {
			t.Fatalf("DescribeAutoScalingGroups against real AWS: %v", err)
		}
	}
	if tmpl.LaunchTemplateID == "" {
		t.Log("LBTUNE_AWS_LAUNCH_TEMPLATE not set: not launching an instance")
		return
	}
	p.templates["lbtune-test"] = EC2Template{LaunchTemplateID: tmpl.LaunchTemplateID, Readiness: tmpl.Readiness}
	m, err := p.Launch(ctx, "lbtune-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx, "lbtune-test", m); err != nil {
		t.Fatal(err)
	}
}
