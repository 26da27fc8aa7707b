// etcdctl, unchanged: the upstream command, built at the pinned release.
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
