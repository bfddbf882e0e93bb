// Package nginx is the NGINX actuator: it renders the upstream blocks of the
// pools lbtune manages into an include file, writes it atomically, validates
// it with `nginx -t`, reloads NGINX gracefully and rolls back to the last good
// file when validation or reload fails. It sits at the end of the flow
// (agent decision -> actuator -> balancer); the running NGINX never sees a
// config that nginx -t refused.
package nginx
