// Package nginx is the NGINX actuator: it renders the upstream blocks of the
// pools lbtune manages into an include file and has the running NGINX load
// them. It sits at the end of the flow (agent decision -> actuator ->
// balancer).
//
// Every change (Apply, SetWeights, AddServer, RemoveServer) runs one
// sequence, so that the include file, the config the running NGINX uses
// and the upstreams this package records (Upstreams, Applied) agree:
//
//  1. Stage: render into a new dot file next to the include
//     (".<include>.lbtune-staged-*", so no glob include reads it), fsync.
//     The include is not touched.
//  2. Validate: nginx -t against a copy of the main config, written next to
//     it so relative paths resolve the same, in which every include of the
//     managed file (direct, nested or through a glob) reads the staged file.
//     On failure the staged file is removed: the include is byte-identical
//     and NGINX was not signalled (ErrValidation).
//  3. Commit: rename the staged file over the include and fsync the
//     directory. Anything that reads the include, an outside reload or a
//     restart included, sees the old file or the validated new one, never
//     a half-written or unvalidated one; a process killed before this step
//     leaves the include as it was (the stale staged file is removed by the
//     next change).
//  4. Reload and confirm: SIGHUP to the master, then wait up to
//     ReloadTimeout for a worker that was not there before (the master only
//     starts workers after loading the config) and for the old workers to
//     stop accepting. Done: the new upstreams are recorded.
//  5. If new workers started but old ones still accept at the timeout, the
//     master runs the new config: it is kept and recorded (roll forward,
//     logged). If no new worker started, the master did not load it: the
//     previous file is renamed back and the master signalled again, and the
//     previous upstreams stay recorded (ErrReload, saying whether that second
//     reload was confirmed). Either way the last signal lbtune sends follows
//     the last write of the file, so whatever the master loads next is what
//     lbtune records.
package nginx
