package aws

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// fakeAWS answers the EC2 and Auto Scaling query APIs with response bodies
// shaped like the AWS API reference examples, from a small in-memory state.
// Every request's Action and parameters are recorded for assertions.
type fakeAWS struct {
	t  testing.TB
	mu sync.Mutex
	// requests in arrival order.
	requests []url.Values
	// instances by id; order by creation.
	instances map[string]*fakeInstance
	order     []string
	next      int
	// ip given to new instances (tests point it at a local health server).
	ip string
	// group is the one Auto Scaling group.
	groupName           string
	desired, min, max   int
	groupMembers        []string
	bootDescribes       int // describes an instance stays pending
	failAction, failMsg string
}

type fakeInstance struct {
	id, pool, state, lifecycle, health string
	describes                          int
	launched                           time.Time
}

func newFakeAWS(t testing.TB) (*fakeAWS, *ec2.Client, *autoscaling.Client) {
	f := &fakeAWS{t: t, instances: map[string]*fakeInstance{}, ip: "10.0.1.17",
		groupName: "web-asg", min: 1, max: 4, bootDescribes: 1}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
	e := ec2.New(ec2.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: awssdk.String(srv.URL), RetryMaxAttempts: 1})
	a := autoscaling.New(autoscaling.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: awssdk.String(srv.URL), RetryMaxAttempts: 1})
	return f, e, a
}

// calls returns the recorded requests with the given Action.
func (f *fakeAWS) calls(action string) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []url.Values
	for _, r := range f.requests {
		if r.Get("Action") == action {
			out = append(out, r)
		}
	}
	return out
}

// addGroupInstance puts a running, InService instance in the group.
func (f *fakeAWS) addGroupInstance() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.newInstance("")
	in.state, in.lifecycle, in.health = "running", "InService", "Healthy"
	f.groupMembers = append(f.groupMembers, in.id)
	f.desired++
	return in.id
}

func (f *fakeAWS) newInstance(pool string) *fakeInstance {
	f.next++
	in := &fakeInstance{id: fmt.Sprintf("i-0abc%012d", f.next), pool: pool, state: "pending",
		lifecycle: "Pending", health: "Healthy", launched: time.Date(2026, 11, 28, 9, 0, f.next, 0, time.UTC)}
	f.instances[in.id] = in
	f.order = append(f.order, in.id)
	return in
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.PostForm)
	action := r.PostForm.Get("Action")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	if action == f.failAction {
		w.WriteHeader(http.StatusBadRequest)
		if strings.Contains(r.PostForm.Get("Version"), "2011") { // Auto Scaling
			fmt.Fprintf(w, `<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>%s</Message></Error><RequestId>7c6e177f-f082-11e1-ac58-3714bEXAMPLE</RequestId></ErrorResponse>`, f.failMsg)
		} else {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InvalidParameterValue</Code><Message>%s</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>`, f.failMsg)
		}
		return
	}
	switch action {
	case "RunInstances":
		in := f.newInstance(r.PostForm.Get("TagSpecification.1.Tag.1.Value"))
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
  <reservationId>r-1234567890abcdef0</reservationId>
  <ownerId>123456789012</ownerId>
  <groupSet/>
  <instancesSet>%s</instancesSet>
</RunInstancesResponse>`, f.instanceXML(in))
	case "DescribeInstances":
		ids := indexed(r.PostForm, "InstanceId")
		pool := ""
		for i := 1; r.PostForm.Get(fmt.Sprintf("Filter.%d.Name", i)) != ""; i++ {
			if r.PostForm.Get(fmt.Sprintf("Filter.%d.Name", i)) == "tag:"+PoolTag {
				pool = r.PostForm.Get(fmt.Sprintf("Filter.%d.Value.1", i))
			}
		}
		var items strings.Builder
		for _, id := range f.order {
			in := f.instances[id]
			if (len(ids) > 0 && !contains(ids, id)) || (pool != "" && in.pool != pool) {
				continue
			}
			in.describes++
			if in.state == "pending" && in.describes > f.bootDescribes {
				in.state = "running"
			}
			items.WriteString(f.instanceXML(in))
		}
		if len(ids) > 0 && items.Len() == 0 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance IDs '%s' do not exist</Message></Error></Errors><RequestID>x</RequestID></Response>`, strings.Join(ids, ", "))
			return
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <ownerId>123456789012</ownerId>
      <groupSet/>
      <instancesSet>%s</instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>`, items.String())
	case "TerminateInstances":
		var items strings.Builder
		for _, id := range indexed(r.PostForm, "InstanceId") {
			in, ok := f.instances[id]
			if !ok {
				continue
			}
			prev := in.state
			in.state = "shutting-down"
			fmt.Fprintf(&items, `<item><instanceId>%s</instanceId><currentState><code>32</code><name>shutting-down</name></currentState><previousState><code>16</code><name>%s</name></previousState></item>`, id, prev)
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
  <instancesSet>%s</instancesSet>
</TerminateInstancesResponse>`, items.String())
	case "DescribeAutoScalingGroups":
		var members strings.Builder
		for _, id := range f.groupMembers {
			in := f.instances[id]
			in.describes++
			if in.lifecycle == "Pending" && in.describes > f.bootDescribes {
				in.lifecycle, in.state = "InService", "running"
			}
			fmt.Fprintf(&members, `<member><InstanceId>%s</InstanceId><InstanceType>t3.micro</InstanceType><AvailabilityZone>us-east-1a</AvailabilityZone><LifecycleState>%s</LifecycleState><HealthStatus>%s</HealthStatus><LaunchTemplate><LaunchTemplateId>lt-0123456789abcdef0</LaunchTemplateId><LaunchTemplateName>web</LaunchTemplateName><Version>1</Version></LaunchTemplate><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>`,
				id, in.lifecycle, in.health)
		}
		fmt.Fprintf(w, `<DescribeAutoScalingGroupsResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeAutoScalingGroupsResult>
    <AutoScalingGroups>
      <member>
        <AutoScalingGroupName>%s</AutoScalingGroupName>
        <AutoScalingGroupARN>arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:12345678-1234-1234-1234-123456789012:autoScalingGroupName/%[1]s</AutoScalingGroupARN>
        <MinSize>%d</MinSize>
        <MaxSize>%d</MaxSize>
        <DesiredCapacity>%d</DesiredCapacity>
        <DefaultCooldown>300</DefaultCooldown>
        <AvailabilityZones><member>us-east-1a</member></AvailabilityZones>
        <HealthCheckType>EC2</HealthCheckType>
        <HealthCheckGracePeriod>300</HealthCheckGracePeriod>
        <Instances>%s</Instances>
        <CreatedTime>2026-11-01T10:00:00.000Z</CreatedTime>
        <VPCZoneIdentifier>subnet-12345678</VPCZoneIdentifier>
        <TerminationPolicies><member>Default</member></TerminationPolicies>
        <NewInstancesProtectedFromScaleIn>false</NewInstancesProtectedFromScaleIn>
      </member>
    </AutoScalingGroups>
  </DescribeAutoScalingGroupsResult>
  <ResponseMetadata><RequestId>0f02a07d-b677-11e2-9eb0-dd50EXAMPLE</RequestId></ResponseMetadata>
</DescribeAutoScalingGroupsResponse>`, f.groupName, f.min, f.max, f.desired, members.String())
	case "SetDesiredCapacity":
		n, _ := strconv.Atoi(r.PostForm.Get("DesiredCapacity"))
		for len(f.groupMembers) < n {
			f.groupMembers = append(f.groupMembers, f.newInstance("").id)
		}
		f.desired = n
		fmt.Fprint(w, `<SetDesiredCapacityResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <ResponseMetadata><RequestId>9fb7e2db-6998-11e2-a985-57c8EXAMPLE</RequestId></ResponseMetadata>
</SetDesiredCapacityResponse>`)
	case "TerminateInstanceInAutoScalingGroup":
		id := r.PostForm.Get("InstanceId")
		for i, m := range f.groupMembers {
			if m == id {
				f.groupMembers = append(f.groupMembers[:i], f.groupMembers[i+1:]...)
				f.instances[id].state = "shutting-down"
				if r.PostForm.Get("ShouldDecrementDesiredCapacity") == "true" {
					f.desired--
				}
			}
		}
		fmt.Fprintf(w, `<TerminateInstanceInAutoScalingGroupResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <TerminateInstanceInAutoScalingGroupResult>
    <Activity>
      <StatusCode>InProgress</StatusCode>
      <ActivityId>108f6ca7-0e0c-4a57-8d2c-b3a9EXAMPLE</ActivityId>
      <Progress>0</Progress>
      <StartTime>2026-11-28T09:30:00.000Z</StartTime>
      <Cause>At 2026-11-28T09:30:00Z instance %[1]s was taken out of service in response to a user request, shrinking the capacity from 2 to 1.</Cause>
      <Details>{"Subnet ID":"subnet-12345678","Availability Zone":"us-east-1a"}</Details>
      <Description>Terminating EC2 instance: %[1]s</Description>
      <AutoScalingGroupName>%[2]s</AutoScalingGroupName>
    </Activity>
  </TerminateInstanceInAutoScalingGroupResult>
  <ResponseMetadata><RequestId>a1ba8fb9-31d6-4d9a-ace1-a7f7EXAMPLE</RequestId></ResponseMetadata>
</TerminateInstanceInAutoScalingGroupResponse>`, id, f.groupName)
	default:
		f.t.Errorf("fake AWS: unexpected action %q (%v)", action, r.PostForm)
		w.WriteHeader(400)
	}
}

// instanceXML renders one instance item as in the EC2 API reference.
func (f *fakeAWS) instanceXML(in *fakeInstance) string {
	codes := map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
	tags := ""
	if in.pool != "" {
		tags = fmt.Sprintf(`<tagSet><item><key>%s</key><value>%s</value></item></tagSet>`, PoolTag, in.pool)
	}
	return fmt.Sprintf(`<item>
        <instanceId>%s</instanceId>
        <imageId>ami-0abcdef1234567890</imageId>
        <instanceState><code>%d</code><name>%s</name></instanceState>
        <privateDnsName>ip-10-0-1-17.ec2.internal</privateDnsName>
        <dnsName/>
        <instanceType>t3.micro</instanceType>
        <launchTime>%s</launchTime>
        <placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement>
        <monitoring><state>disabled</state></monitoring>
        <subnetId>subnet-12345678</subnetId>
        <vpcId>vpc-12345678</vpcId>
        <privateIpAddress>%s</privateIpAddress>
        <sourceDestCheck>true</sourceDestCheck>
        <groupSet><item><groupId>sg-12345678</groupId><groupName>web</groupName></item></groupSet>
        <architecture>x86_64</architecture>
        <rootDeviceType>ebs</rootDeviceType>
        <rootDeviceName>/dev/xvda</rootDeviceName>
        %s
      </item>`, in.id, codes[in.state], in.state, in.launched.Format("2006-01-02T15:04:05.000Z"), f.ip, tags)
}

// indexed collects prefix.1, prefix.2, ... values of a query request.
func indexed(v url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		s := v.Get(fmt.Sprintf("%s.%d", prefix, i))
		if s == "" {
			break
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
