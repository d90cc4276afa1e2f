package inbox

import "net/http"

func newAdminHandler(ib *Inbox, client any) http.Handler { return http.NotFoundHandler() }

type operator struct{}

func newOperator(client, db any) operator { return operator{} }
