// Package datasets is the storage stage of lbtune's flow: it keeps the
// collector's snapshots in an embedded bbolt store (with buckets reserved for
// the models, policies, decisions and rewards of later stages), and moves them
// to and from portable dataset files (JSON Lines, optionally gzip). The model
// and agent stages read what the collector wrote only through this package;
// the directory also holds recorded datasets as data.
package datasets
