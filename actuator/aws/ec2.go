package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/lbtune/lbtune/actuator"
)

// EC2Template says how to run one pool's instances with RunInstances.
// Either LaunchTemplateID/Name (optionally with ImageID overriding the
// template's image) or ImageID with InstanceType must be set.
type EC2Template struct {
	LaunchTemplateID      string
	LaunchTemplateName    string
	LaunchTemplateVersion string // "" means $Default
	ImageID               string
	InstanceType          string
	SubnetID              string
	SecurityGroupIDs      []string
	// Tags are added to every instance, besides PoolTag=<pool>.
	Tags map[string]string
	Readiness
}

// Validate reports what is missing to launch an instance.
func (t EC2Template) Validate() error {
	if t.LaunchTemplateID == "" && t.LaunchTemplateName == "" && (t.ImageID == "" || t.InstanceType == "") {
		return errors.New("ec2 template: set a launch template, or an image id and an instance type")
	}
	if t.Port <= 0 || t.Port > 65535 {
		return fmt.Errorf("ec2 template: port %d outside 1..65535", t.Port)
	}
	return nil
}

var _ actuator.Provider = (*EC2)(nil)

// EC2 runs pools as plain EC2 instances tagged PoolTag=<pool>.
type EC2 struct {
	client    *ec2.Client
	templates map[string]EC2Template
	http      *http.Client
	// Log receives one line per action; nil means slog.Default().
	Log *slog.Logger

	mu         sync.Mutex
	terminated map[string]bool // ids this EC2 terminated (they stay listed for a while)
}

// NewEC2 returns an EC2 provider using client for the pools in templates.
func NewEC2(client *ec2.Client, templates map[string]EC2Template) (*EC2, error) {
	var errs []error
	for pool, t := range templates {
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("pool %s: %w", pool, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &EC2{client: client, templates: templates, terminated: map[string]bool{},
		http: healthClient()}, nil
}

func (e *EC2) log() *slog.Logger { return orDefault(e.Log) }

func (e *EC2) template(pool string) (EC2Template, error) { return lookup("ec2", e.templates, pool) }

// Launch runs one instance for pool (RunInstances, tagged), waits until it
// is running with a private address (DescribeInstances) and, if set, until
// its health check answers. An instance that never gets ready is terminated.
func (e *EC2) Launch(ctx context.Context, pool string) (actuator.Member, error) {
	t, err := e.template(pool)
	if err != nil {
		return actuator.Member{}, err
	}
	in := &ec2.RunInstancesInput{
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: tags(pool, t.Tags)}},
	}
	if t.LaunchTemplateID != "" || t.LaunchTemplateName != "" {
		in.LaunchTemplate = &ec2types.LaunchTemplateSpecification{}
		if t.LaunchTemplateID != "" {
			in.LaunchTemplate.LaunchTemplateId = awssdk.String(t.LaunchTemplateID)
		} else {
			in.LaunchTemplate.LaunchTemplateName = awssdk.String(t.LaunchTemplateName)
		}
		if t.LaunchTemplateVersion != "" {
			in.LaunchTemplate.Version = awssdk.String(t.LaunchTemplateVersion)
		}
	}
	if t.ImageID != "" {
		in.ImageId = awssdk.String(t.ImageID)
	}
	if t.InstanceType != "" {
		in.InstanceType = ec2types.InstanceType(t.InstanceType)
	}
	if t.SubnetID != "" {
		in.SubnetId = awssdk.String(t.SubnetID)
	}
	in.SecurityGroupIds = t.SecurityGroupIDs
	out, err := e.client.RunInstances(ctx, in)
	if err != nil {
		return actuator.Member{}, fmt.Errorf("ec2 run instance for %s: %w", pool, err)
	}
	if len(out.Instances) != 1 || out.Instances[0].InstanceId == nil {
		return actuator.Member{}, fmt.Errorf("ec2 run instance for %s: answer holds %d instances", pool, len(out.Instances))
	}
	id := *out.Instances[0].InstanceId
	e.log().Info("ec2 instance launched", "pool", pool, "instance", id)
	m, err := e.waitReady(ctx, t, id)
	if err != nil {
		// Never leave a half-started instance behind.
		_, terr := e.client.TerminateInstances(context.WithoutCancel(ctx), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		return actuator.Member{}, errors.Join(fmt.Errorf("ec2 instance %s of %s: %w", id, pool, err), terr)
	}
	return m, nil
}

// waitReady polls DescribeInstances until id runs with a private IP.
func (e *EC2) waitReady(ctx context.Context, t EC2Template, id string) (actuator.Member, error) {
	ctx, cancel := context.WithTimeout(ctx, t.bootTimeout())
	defer cancel()
	for {
		out, err := e.client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		// Right after RunInstances the id may not be visible yet
		// (InvalidInstanceID.NotFound): keep polling until the timeout.
		if err == nil {
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					m, state := member(in, t.Readiness)
					switch {
					case state == ec2types.InstanceStateNameRunning && m.Addr != "":
						if err := t.waitHealthy(ctx, e.http, m.Addr); err != nil {
							return actuator.Member{}, err
						}
						return m, nil
					case state != ec2types.InstanceStateNamePending && state != ec2types.InstanceStateNameRunning:
						return actuator.Member{}, fmt.Errorf("instance went %s while booting", state)
					}
				}
			}
		}
		if serr := sleep(ctx, t.poll()); serr != nil {
			return actuator.Member{}, fmt.Errorf("%w: %v (last describe error: %v)", ErrBootTimeout, serr, err)
		}
	}
}

// member converts a described instance.
func member(in ec2types.Instance, r Readiness) (actuator.Member, ec2types.InstanceStateName) {
	m := actuator.Member{Name: awssdk.ToString(in.InstanceId), Started: awssdk.ToTime(in.LaunchTime)}
	if ip := awssdk.ToString(in.PrivateIpAddress); ip != "" {
		m.Addr = r.addr(ip)
	}
	var state ec2types.InstanceStateName
	if in.State != nil {
		state = in.State.Name
	}
	m.Healthy = state == ec2types.InstanceStateNameRunning || state == ec2types.InstanceStateNamePending
	if !m.Healthy {
		m.Reason = "instance " + string(state)
	}
	return m, state
}

// Stop terminates m's instance (TerminateInstances). The caller drained it
// from the balancer first.
func (e *EC2) Stop(ctx context.Context, pool string, m actuator.Member) error {
	if _, err := e.template(pool); err != nil {
		return err
	}
	out, err := e.client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{m.Name}})
	if err != nil {
		return fmt.Errorf("ec2 terminate %s of %s: %w", m.Name, pool, err)
	}
	ok := false
	for _, c := range out.TerminatingInstances {
		if awssdk.ToString(c.InstanceId) == m.Name {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("ec2 terminate %s of %s: not in the answer's terminating instances", m.Name, pool)
	}
	e.mu.Lock()
	e.terminated[m.Name] = true
	e.mu.Unlock()
	e.log().Info("ec2 instance terminated", "pool", pool, "instance", m.Name)
	return nil
}

// Members lists pool's instances (DescribeInstances filtered by PoolTag),
// oldest first. Pending and running instances are healthy; stopping,
// stopped and shutting-down ones, and terminated ones this provider did not
// terminate itself, are reported unhealthy so they get replaced.
func (e *EC2) Members(ctx context.Context, pool string) ([]actuator.Member, error) {
	t, err := e.template(pool)
	if err != nil {
		return nil, err
	}
	in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: awssdk.String("tag:" + PoolTag), Values: []string{pool}},
		{Name: awssdk.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}},
	}}
	var out []actuator.Member
	p := ec2.NewDescribeInstancesPaginator(e.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ec2 describe instances of %s: %w", pool, err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				m, _ := member(in, t.Readiness)
				e.mu.Lock()
				gone := e.terminated[m.Name]
				e.mu.Unlock()
				if !gone {
					out = append(out, m)
				}
			}
		}
	}
	sortByStart(out)
	return out, nil
}

// tags returns PoolTag=pool plus extra, sorted by key.
func tags(pool string, extra map[string]string) []ec2types.Tag {
	out := []ec2types.Tag{{Key: awssdk.String(PoolTag), Value: awssdk.String(pool)}}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, ec2types.Tag{Key: awssdk.String(k), Value: awssdk.String(extra[k])})
	}
	return out
}
