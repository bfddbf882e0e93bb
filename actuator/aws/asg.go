package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/lbtune/lbtune/actuator"
)

// ASGTemplate maps a pool to an Auto Scaling group.
type ASGTemplate struct {
	// Group is the Auto Scaling group's name.
	Group string
	Readiness
}

var _ actuator.Provider = (*ASG)(nil)

// ASG runs pools as Auto Scaling groups: Launch raises the desired capacity
// by one and waits for the new instance; Stop terminates one instance and
// decrements the desired capacity, so the group does not replace it.
//
// ASG assumes it is the only one changing the groups' desired capacity.
// Instances the group launches on its own (its health replacement) are
// listed by Members but not added to the balancer; give the groups a health
// check grace period and let Pools replace unhealthy instances instead.
type ASG struct {
	asg       *autoscaling.Client
	ec2       *ec2.Client
	templates map[string]ASGTemplate
	http      *http.Client
	// Log receives one line per action; nil means slog.Default().
	Log *slog.Logger

	mu      sync.Mutex      // serialises reading and raising desired capacity
	claimed map[string]bool // instances handed out by Launch
}

// NewASG returns an ASG provider using the Auto Scaling client (group
// operations) and the EC2 client (private addresses).
func NewASG(asg *autoscaling.Client, ec2c *ec2.Client, templates map[string]ASGTemplate) (*ASG, error) {
	var errs []error
	for pool, t := range templates {
		if t.Group == "" {
			errs = append(errs, fmt.Errorf("pool %s: asg template: group name missing", pool))
		}
		if t.Port <= 0 || t.Port > 65535 {
			errs = append(errs, fmt.Errorf("pool %s: asg template: port %d outside 1..65535", pool, t.Port))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &ASG{asg: asg, ec2: ec2c, templates: templates, claimed: map[string]bool{},
		http: healthClient()}, nil
}

func (a *ASG) log() *slog.Logger { return orDefault(a.Log) }

func (a *ASG) template(pool string) (ASGTemplate, error) { return lookup("asg", a.templates, pool) }

// describe returns the group.
func (a *ASG) describe(ctx context.Context, group string) (astypes.AutoScalingGroup, error) {
	out, err := a.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil {
		return astypes.AutoScalingGroup{}, fmt.Errorf("describe auto scaling group %s: %w", group, err)
	}
	for _, g := range out.AutoScalingGroups {
		if awssdk.ToString(g.AutoScalingGroupName) == group {
			return g, nil
		}
	}
	return astypes.AutoScalingGroup{}, fmt.Errorf("describe auto scaling group %s: not found", group)
}

// Launch raises the group's desired capacity by one (SetDesiredCapacity,
// refused beyond the group's MaxSize), waits until an instance that was not
// there before is InService and Healthy, finds its private address
// (DescribeInstances) and, if set, waits for its health check.
func (a *ASG) Launch(ctx context.Context, pool string) (actuator.Member, error) {
	t, err := a.template(pool)
	if err != nil {
		return actuator.Member{}, err
	}
	before, err := a.raise(ctx, t.Group)
	if err != nil {
		return actuator.Member{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.bootTimeout())
	defer cancel()
	for {
		g, err := a.describe(ctx, t.Group)
		if err == nil {
			if id := a.claimNew(g, before); id != "" {
				m, err := a.address(ctx, t, id)
				if err != nil {
					return actuator.Member{}, err
				}
				if err := t.waitHealthy(ctx, a.http, m.Addr); err != nil {
					return actuator.Member{}, err
				}
				a.log().Info("asg instance in service", "pool", pool, "group", t.Group, "instance", id, "addr", m.Addr)
				return m, nil
			}
		}
		if serr := sleep(ctx, t.poll()); serr != nil {
			return actuator.Member{}, fmt.Errorf("%w: group %s: %v (last describe error: %v)", ErrBootTimeout, t.Group, serr, err)
		}
	}
}

// raise sets desired = current desired + 1 and returns the instances present
// before. Under a.mu so that parallel launches each add one.
func (a *ASG) raise(ctx context.Context, group string) (map[string]bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, err := a.describe(ctx, group)
	if err != nil {
		return nil, err
	}
	want := awssdk.ToInt32(g.DesiredCapacity) + 1
	if max := awssdk.ToInt32(g.MaxSize); want > max {
		return nil, fmt.Errorf("asg %s: desired %d would exceed the group's max size %d", group, want, max)
	}
	_, err = a.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: awssdk.String(group), DesiredCapacity: awssdk.Int32(want), HonorCooldown: awssdk.Bool(false),
	})
	if err != nil {
		return nil, fmt.Errorf("asg %s set desired capacity %d: %w", group, want, err)
	}
	a.log().Info("asg desired capacity raised", "group", group, "desired", want)
	before := map[string]bool{}
	for _, in := range g.Instances {
		before[awssdk.ToString(in.InstanceId)] = true
	}
	return before, nil
}

// claimNew returns an InService, Healthy instance of g not in before and not
// yet claimed, and claims it; "" if none.
func (a *ASG) claimNew(g astypes.AutoScalingGroup, before map[string]bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, in := range g.Instances {
		id := awssdk.ToString(in.InstanceId)
		if before[id] || a.claimed[id] || in.LifecycleState != astypes.LifecycleStateInService ||
			awssdk.ToString(in.HealthStatus) != "Healthy" {
			continue
		}
		a.claimed[id] = true
		return id
	}
	return ""
}

// address describes instance id and returns it as a Member.
func (a *ASG) address(ctx context.Context, t ASGTemplate, id string) (actuator.Member, error) {
	out, err := a.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return actuator.Member{}, fmt.Errorf("describe instance %s: %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if awssdk.ToString(in.InstanceId) == id {
				m, _ := member(in, t.Readiness)
				if m.Addr == "" {
					return actuator.Member{}, fmt.Errorf("instance %s has no private address", id)
				}
				return m, nil
			}
		}
	}
	return actuator.Member{}, fmt.Errorf("describe instance %s: not in the answer", id)
}

// Stop terminates m's instance and decrements the group's desired capacity
// (TerminateInstanceInAutoScalingGroup, ShouldDecrementDesiredCapacity).
// The caller drained it from the balancer first.
func (a *ASG) Stop(ctx context.Context, pool string, m actuator.Member) error {
	t, err := a.template(pool)
	if err != nil {
		return err
	}
	out, err := a.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: awssdk.String(m.Name), ShouldDecrementDesiredCapacity: awssdk.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("asg %s terminate %s: %w", t.Group, m.Name, err)
	}
	a.mu.Lock()
	delete(a.claimed, m.Name)
	a.mu.Unlock()
	activity := ""
	if out.Activity != nil {
		activity = awssdk.ToString(out.Activity.Description)
	}
	a.log().Info("asg instance terminated", "pool", pool, "group", t.Group, "instance", m.Name, "activity", activity)
	return nil
}

// Members lists the group's instances with their private addresses,
// oldest first. InService and Healthy (or Pending) instances are healthy;
// Unhealthy ones and those leaving the group are not.
func (a *ASG) Members(ctx context.Context, pool string) ([]actuator.Member, error) {
	t, err := a.template(pool)
	if err != nil {
		return nil, err
	}
	g, err := a.describe(ctx, t.Group)
	if err != nil {
		return nil, err
	}
	if len(g.Instances) == 0 {
		return nil, nil
	}
	state := map[string]astypes.Instance{}
	ids := make([]string, 0, len(g.Instances))
	for _, in := range g.Instances {
		id := awssdk.ToString(in.InstanceId)
		state[id] = in
		ids = append(ids, id)
	}
	out, err := a.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		return nil, fmt.Errorf("describe instances of group %s: %w", t.Group, err)
	}
	var ms []actuator.Member
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			m, _ := member(in, t.Readiness)
			gi := state[m.Name]
			health := awssdk.ToString(gi.HealthStatus)
			switch gi.LifecycleState {
			case astypes.LifecycleStateInService, astypes.LifecycleStatePending, astypes.LifecycleStatePendingWait, astypes.LifecycleStatePendingProceed:
				if health != "" && health != "Healthy" {
					m.Healthy, m.Reason = false, "group health "+health
				}
			default:
				m.Healthy, m.Reason = false, "lifecycle "+string(gi.LifecycleState)
			}
			ms = append(ms, m)
		}
	}
	sortByStart(ms)
	return ms, nil
}
