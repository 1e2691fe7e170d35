// Command probe runs inside a test pod on the node and prints what the pod sees, as JSON.
//
//	probe serve            answer "ok" on :8080
//	probe report URL NAME… the pod's IPv4 routes and resolv.conf, a GET of URL, and the resolution of each NAME
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
		fmt.Fprintln(os.Stderr, http.ListenAndServe(":8080", nil))
		os.Exit(1)
	}
	if len(os.Args) < 3 || os.Args[1] != "report" {
		fmt.Fprintln(os.Stderr, "usage: probe serve | probe report URL NAME...")
		os.Exit(2)
	}
	resolvConf, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolvConf = []byte("error: " + err.Error())
	}
	report := map[string]any{"routes": routes(), "get": get(os.Args[2]), "resolv_conf": string(resolvConf)}
	resolved := map[string]any{}
	for _, name := range os.Args[3:] {
		addrs, err := net.LookupHost(name)
		if err != nil {
			resolved[name] = "error: " + err.Error()
		} else {
			resolved[name] = addrs
		}
	}
	report["resolved"] = resolved
	json.NewEncoder(os.Stdout).Encode(report)
}

// routes lists /proc/net/route as [destination, mask] pairs in dotted form.
func routes() [][2]string {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return [][2]string{{"error", err.Error()}}
	}
	var out [][2]string
	for _, line := range strings.Split(string(data), "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) < 8 {
			continue
		}
		out = append(out, [2]string{dotted(fields[1]), dotted(fields[7])})
	}
	return out
}

// dotted turns the kernel's little-endian hex address into a.b.c.d.
func dotted(hex string) string {
	var v uint32
	fmt.Sscanf(hex, "%x", &v)
	return fmt.Sprintf("%d.%d.%d.%d", v&0xff, v>>8&0xff, v>>16&0xff, v>>24)
}

// get tries a few times: a Service's rules follow its endpoints by a kube-proxy sync (about a second), so a
// client started as the server turns Ready may meet "connection refused" once. Bounded: 10 tries, 1 s apart.
func get(url string) string {
	client := http.Client{Timeout: 10 * time.Second}
	var err error
	for try := 0; try < 10; try++ {
		var response *http.Response
		if response, err = client.Get(url); err == nil {
			defer response.Body.Close()
			body, _ := io.ReadAll(response.Body)
			return string(body)
		}
		time.Sleep(time.Second)
	}
	return "error: " + err.Error()
}
