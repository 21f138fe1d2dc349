package bookinfo

import (
	"net/http"
	"strconv"
)

// Book is what details answers.
type Book struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

// RatingList is what ratings answers: stars by reviewer.
type RatingList struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// ReviewList is what reviews answers. Podname says which version served
// ("reviews-v3").
type ReviewList struct {
	ID      string   `json:"id"`
	Podname string   `json:"podname"`
	Reviews []Review `json:"reviews"`
}

// Review is one reviewer's text and, from v2 on, the rating.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"` // nil for reviews v1
}

// Rating is a review's stars, or the reason there are none.
type Rating struct {
	Stars int    `json:"stars,omitempty"`
	Color string `json:"color,omitempty"` // "black" (v2) or "red" (v3)
	Error string `json:"error,omitempty"`
}

// RatingsUnavailable is the text a review's rating carries when ratings
// cannot be reached.
const RatingsUnavailable = "Ratings service is currently unavailable"

func (a *app) details(w http.ResponseWriter, r *http.Request) {
	id, ok := bookID(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, Book{
		ID: id, Author: "William Shakespeare", Year: 1595, Type: "paperback", Pages: 200,
		Publisher: "PublisherA", Language: "English", ISBN10: "1234567890", ISBN13: "123-1234567890",
	})
}

func (a *app) ratings(w http.ResponseWriter, r *http.Request) {
	id, ok := bookID(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, RatingList{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}})
}

var reviewTexts = []Review{
	{Reviewer: "Reviewer1", Text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
	{Reviewer: "Reviewer2", Text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
}

// reviews answers the book's reviews; v2 and v3 add the ratings they fetch,
// in black and red stars.
func (a *app) reviews(w http.ResponseWriter, r *http.Request) {
	id, ok := bookID(w, r)
	if !ok {
		return
	}
	out := ReviewList{ID: r.PathValue("id"), Podname: Reviews + "-" + a.version}
	out.Reviews = append(out.Reviews, reviewTexts...)
	if a.version != "v1" {
		color := "black"
		if a.version == "v3" {
			color = "red"
		}
		var rt RatingList
		err := a.getJSON(r, serviceURL(Ratings, "/ratings/"+strconv.Itoa(id)), "", &rt)
		if err != nil {
			a.log.Warn("ratings unavailable", "err", err)
		}
		for i := range out.Reviews {
			if err != nil {
				out.Reviews[i].Rating = &Rating{Error: RatingsUnavailable}
				continue
			}
			out.Reviews[i].Rating = &Rating{Stars: rt.Ratings[out.Reviews[i].Reviewer], Color: color}
		}
	}
	writeJSON(w, http.StatusOK, out)
}
