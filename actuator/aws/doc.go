// Package aws is the cloud provider of the actuator, on aws-sdk-go-v2: an
// EC2 target that runs instances from a launch template or an image (tagged
// with their pool) and an Auto Scaling group target that changes the group's
// desired capacity. Both report each instance's private address so that
// actuator.Pools registers it in the balancer, and both are only asked to
// terminate an instance after Pools drained it from the balancer.
package aws
