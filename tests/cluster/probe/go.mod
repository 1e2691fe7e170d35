// A static probe the cluster tests run inside pods (mounted into a pod of the node's pause image).
module cryptolake.test/probe

go 1.26.0
