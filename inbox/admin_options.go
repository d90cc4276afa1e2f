package inbox

import (
	"fmt"
	"net/netip"
	"strings"
)

// WithAdminHosts adds host names (or IP addresses) that AdminHandler serves
// besides the address it is reached on and the loopback names, for an admin
// port reached through a public name or a proxy: "admin.example.com". Any
// port goes with each. Without it, a request for any other name is refused,
// as a DNS rebinding attack would send one.
func WithAdminHosts(hosts ...string) Option {
	return option("WithAdminHosts", forOpen, func(c *config) error {
		for _, h := range hosts {
			name := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
			if ip, err := netip.ParseAddr(name); err == nil {
				name = ip.Unmap().WithZone("").String()
			} else if name == "" || strings.ContainsAny(name, ":/@?#[]% \t") {
				return fmt.Errorf("inbox: WithAdminHosts(%q): want a host name or IP address, without scheme or port", h)
			}
			c.adminHosts = append(c.adminHosts, name)
		}
		return nil
	})
}
