package bookinfo

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// ReviewsError is what the page says when reviews cannot be fetched.
const ReviewsError = "Error fetching product reviews"

// DetailsError is what the page says when details cannot be fetched.
const DetailsError = "Error fetching product details"

// Product is one book in productpage's catalogue.
type Product struct {
	ID              int    `json:"id"`
	Title           string `json:"title"`
	DescriptionHTML string `json:"descriptionHtml"`
}

var products = []Product{{
	ID:    0,
	Title: "The Comedy of Errors",
	DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ` +
		`The Comedy of Errors is one of William Shakespeare's early plays. It is his shortest and one of his ` +
		`most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, ` +
		`in addition to puns and word play.`,
}}

func (a *app) productPageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", a.index)
	mux.HandleFunc("GET /productpage", a.productPage)
	mux.HandleFunc("GET /static/style.css", a.style)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /login", a.login) // curl-friendly: /login?username=jason
	mux.HandleFunc("GET /logout", a.logout)
	mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, products)
	})
	mux.HandleFunc("GET /api/v1/products/{id}", a.apiDetails)
	mux.HandleFunc("GET /api/v1/products/{id}/reviews", a.apiReviews)
	mux.HandleFunc("GET /api/v1/products/{id}/ratings", a.apiRatings)
}

// user is the logged-in user: the "user" cookie, else an end-user header
// already on the request (handy with curl -H 'end-user: jason').
func user(r *http.Request) string {
	if c, err := r.Cookie(UserCookie); err == nil && c.Value != "" {
		return c.Value
	}
	return r.Header.Get(EndUserHeader)
}

// pageData is what the product page template renders.
type pageData struct {
	Product      Product
	Description  template.HTML
	User         string
	Details      *Book
	DetailsError string
	Reviews      *ReviewList
	ReviewsError string
}

func (a *app) productPage(w http.ResponseWriter, r *http.Request) {
	p := products[0]
	d := pageData{Product: p, Description: template.HTML(p.DescriptionHTML), User: user(r)}
	id := strconv.Itoa(p.ID)
	var book Book
	if err := a.getJSON(r, serviceURL(Details, "/details/"+id), d.User, &book); err != nil {
		a.log.Warn("details unavailable", "err", err)
		d.DetailsError = DetailsError
	} else {
		d.Details = &book
	}
	var rev ReviewList
	if err := a.getJSON(r, serviceURL(Reviews, "/reviews/"+id), d.User, &rev); err != nil {
		a.log.Warn("reviews unavailable", "err", err)
		d.ReviewsError = ReviewsError
	} else {
		d.Reviews = &rev
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, d); err != nil {
		a.log.Warn("render product page", "err", err)
	}
}

func (a *app) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(`<!DOCTYPE html><html><head><title>Simple Bookstore App</title></head><body>` +
		`<h1>Simple Bookstore App</h1><p><a href="/productpage">Normal user</a> | ` +
		`<a href="/login?username=jason">Log in as jason</a></p></body></html>` + "\n"))
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.FormValue("username"))
	if name == "" {
		http.Error(w, "login: username is required", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: UserCookie, Value: name, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/productpage", http.StatusFound)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: UserCookie, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/productpage", http.StatusFound)
}

func (a *app) apiDetails(w http.ResponseWriter, r *http.Request) {
	id, ok := bookID(w, r)
	if !ok {
		return
	}
	var book Book
	if err := a.getJSON(r, serviceURL(Details, "/details/"+strconv.Itoa(id)), user(r), &book); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": DetailsError})
		return
	}
	writeJSON(w, http.StatusOK, book)
}

func (a *app) apiReviews(w http.ResponseWriter, r *http.Request) {
	id, ok := bookID(w, r)
	if !ok {
		return
	}
	var rev ReviewList
	if err := a.getJSON(r, serviceURL(Reviews, "/reviews/"+strconv.Itoa(id)), user(r), &rev); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": ReviewsError})
		return
	}
	writeJSON(w, http.StatusOK, rev)
}

func (a *app) apiRatings(w http.ResponseWriter, r *http.Request) {
	id, ok := bookID(w, r)
	if !ok {
		return
	}
	var rt RatingList
	if err := a.getJSON(r, serviceURL(Ratings, "/ratings/"+strconv.Itoa(id)), user(r), &rt); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": RatingsUnavailable})
		return
	}
	writeJSON(w, http.StatusOK, rt)
}

func (a *app) style(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	_, _ = w.Write([]byte(styleCSS))
}

const styleCSS = `body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}
.stars{font-size:1.3em}.black{color:#000}.red{color:#c00}
.served{color:#666;font-size:.9em}.error{color:#c00}
.reviews blockquote{border-left:3px solid #ccc;margin:1em 0;padding-left:1em}
`

// stars renders n filled and 5-n empty stars.
func stars(n int) string {
	n = max(0, min(n, 5))
	return strings.Repeat("★", n) + strings.Repeat("☆", 5-n)
}

var pageTmpl = template.Must(template.New("productpage").Funcs(template.FuncMap{"stars": stars}).Parse(`<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Simple Bookstore App</title><link rel="stylesheet" href="/static/style.css"></head>
<body>
<nav>Simple Bookstore App ·
{{- if .User}} signed in as <b>{{.User}}</b> (<a href="/logout">sign out</a>)
{{- else}} <form method="post" action="/login" style="display:inline"><input name="username" placeholder="user (try jason)"> <button>Sign in</button></form>
{{- end}}</nav>
<h1>{{.Product.Title}}</h1>
<p>{{.Description}}</p>
<section class="details">
<h2>Book Details</h2>
{{- with .Details}}
<dl>
<dt>Type:</dt><dd>{{.Type}}</dd>
<dt>Pages:</dt><dd>{{.Pages}}</dd>
<dt>Publisher:</dt><dd>{{.Publisher}}</dd>
<dt>Language:</dt><dd>{{.Language}}</dd>
<dt>ISBN-10:</dt><dd>{{.ISBN10}}</dd>
<dt>ISBN-13:</dt><dd>{{.ISBN13}}</dd>
</dl>
{{- else}}
<p class="error">{{.DetailsError}}</p>
{{- end}}
</section>
<section class="reviews">
<h2>Book Reviews</h2>
{{- with .Reviews}}
{{- range .Reviews}}
<blockquote>
<p>{{.Text}}</p>
<small>{{.Reviewer}}</small>
{{- with .Rating}}
{{- if .Error}}
<p class="error">{{.Error}}</p>
{{- else}}
<p class="stars {{.Color}}">{{stars .Stars}}</p>
{{- end}}
{{- end}}
</blockquote>
{{- end}}
<p class="served">Reviews served by: <b>{{.Podname}}</b></p>
{{- else}}
<p class="error">{{.ReviewsError}}</p>
{{- end}}
</section>
</body>
</html>
`))
