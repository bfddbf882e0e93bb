package tuner

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/lbtune/lbtune/actuator"
	awsprov "github.com/lbtune/lbtune/actuator/aws"
	"github.com/lbtune/lbtune/tuner/config"
)

// awsProvider builds the EC2 or Auto Scaling group provider of an aws
// actuator. Credentials come from the usual AWS chain (environment, shared
// config, instance role); nothing is called until the first scale.
func awsProvider(cfg *config.Config, a config.Actuator, log *slog.Logger) (actuator.Provider, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(a.AWS.Region))
	if err != nil {
		return nil, fmt.Errorf("actuator %s: aws config: %w", a.Name, err)
	}
	ready := awsprov.Readiness{Port: a.AWS.Port, HealthPath: "/healthz"}
	ec2c := ec2.NewFromConfig(ac)
	if a.AWS.ASG != "" {
		templates := map[string]awsprov.ASGTemplate{}
		for _, p := range cfg.Pools {
			if p.Actuator == a.Name {
				templates[p.Name] = awsprov.ASGTemplate{Group: a.AWS.ASG, Readiness: ready}
			}
		}
		if len(templates) > 1 {
			return nil, fmt.Errorf("actuator %s: one Auto Scaling group serves one pool, %d pools use it", a.Name, len(templates))
		}
		prov, err := awsprov.NewASG(autoscaling.NewFromConfig(ac), ec2c, templates)
		if err != nil {
			return nil, fmt.Errorf("actuator %s: %w", a.Name, err)
		}
		prov.Log = log.With("actuator", a.Name)
		return prov, nil
	}
	templates := map[string]awsprov.EC2Template{}
	for _, p := range cfg.Pools {
		if p.Actuator == a.Name {
			templates[p.Name] = awsprov.EC2Template{LaunchTemplateName: a.AWS.LaunchTemplate, ImageID: p.Template.Image,
				Tags: map[string]string{"lbtune-pool": p.Name}, Readiness: ready}
		}
	}
	prov, err := awsprov.NewEC2(ec2c, templates)
	if err != nil {
		return nil, fmt.Errorf("actuator %s: %w", a.Name, err)
	}
	prov.Log = log.With("actuator", a.Name)
	return prov, nil
}
