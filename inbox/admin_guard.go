package inbox

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// adminGuard keeps the admin handler for its operator. A web page the
// operator opens can make the browser send requests to a loopback address,
// so loopback alone protects nothing from it:
//
//   - a page of another site can POST (text/plain, no preflight) to River
//     UI's API: requests a browser marks cross-site (Sec-Fetch-Site, or an
//     Origin other than the Host) may not change anything;
//   - a site whose name the attacker points at 127.0.0.1 (DNS rebinding) is
//     same-origin with itself, and can read the answers: only the address the
//     request reached, the loopback names and the names WithAdminHosts adds
//     are served;
//   - no page may frame the admin pages (clickjacking), and no cache keeps
//     job data.
//
// Clients that are not browsers (curl, scripts, Prometheus) send neither
// header and a Host that is the address they dial, so they are served.
type adminGuard struct {
	next  http.Handler
	hosts []string // lower case, IP addresses in canonical form
	csrf  *http.CrossOriginProtection
	log   *slog.Logger
}

func newAdminGuard(next http.Handler, hosts []string, log *slog.Logger) *adminGuard {
	return &adminGuard{next: next, hosts: hosts, csrf: http.NewCrossOriginProtection(), log: log}
}

func (g *adminGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(r.URL.Path, riverUIPrefix+"/api/") {
		h.Set("Cache-Control", "no-store")
	}
	if !g.servesHost(r) {
		g.log.Warn("inbox: admin request refused: not a name of this admin address", "host", r.Host, "remote", r.RemoteAddr)
		http.Error(w, fmt.Sprintf("cakemail-inbox admin: refused: host %q is neither this admin address nor a loopback name "+
			"(localhost, 127.0.0.1, [::1]); to serve it, add it with inbox.WithAdminHosts (ADMIN_HOSTS in examples/receiver)",
			r.Host), http.StatusMisdirectedRequest)
		return
	}
	if err := g.csrf.Check(r); err != nil {
		g.log.Warn("inbox: admin request refused: cross-site", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		http.Error(w, "cakemail-inbox admin: refused: a web page of another site sent this request (Sec-Fetch-Site or Origin); "+
			"only the admin pages themselves, or a client that is not a browser, may change jobs", http.StatusForbidden)
		return
	}
	g.next.ServeHTTP(w, r)
}

// servesHost reports whether the request's Host names this admin address:
// localhost, a loopback IP, the IP the connection reached, or a name
// WithAdminHosts added; with any port.
func (g *adminGuard) servesHost(r *http.Request) bool {
	name := r.Host
	if host, _, err := net.SplitHostPort(name); err == nil {
		name = host
	}
	name = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))
	ip, err := netip.ParseAddr(name)
	if err != nil {
		return name == "localhost" || (name != "" && slices.Contains(g.hosts, name))
	}
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() || slices.Contains(g.hosts, ip.String()) {
		return true
	}
	// The address the connection reached is the admin address itself.
	local, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	return ok && local.AddrPort().Addr().Unmap().WithZone("") == ip
}
