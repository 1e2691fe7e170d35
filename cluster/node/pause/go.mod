// The pod sandbox ("pause") program of the node; see ../build.sh.
module cryptolake.cluster/pause

go 1.26.0
