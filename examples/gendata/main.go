// Command gendata writes the quick start's training and evaluation data: short
// stories in a style the base model (stories260K, trained on TinyStories) does
// not write. Every story follows one shape — a child and an animal friend
// lose something, look for it in three places and find it in the last — and
// closes with a fixed moral, "And the moral of the story is: ...". The words
// are ones the base model knows, so what the adapter has to learn is the
// style, not a vocabulary.
//
// Usage:
//
//	go run ./examples/gendata -out examples/quickstart/data
//
// writes train.jsonl and eval.jsonl ({"text": ...} per line). The output is a
// pure function of -seed and the counts, so the shipped files can be checked
// by regenerating them.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

var (
	names   = []string{"Lily", "Tom", "Mia", "Ben", "Sue", "Max", "Anna", "Sam", "Lucy", "Tim"}
	friends = []string{"dog", "cat", "bird", "bunny", "duck", "frog", "bear", "fish"}
	things  = []string{"ball", "hat", "toy car", "red kite", "blue box", "little boat", "big book", "teddy"}
	places  = []string{"under the bed", "in the garden", "by the tree", "in the kitchen", "near the pond",
		"in the park", "behind the door", "on the hill", "in the box", "under the table"}
	feelings = []string{"sad", "worried", "upset"}
	morals   = []string{
		"friends help each other find what is lost.",
		"if you look with a friend, you will find it.",
		"never give up when you look for something.",
	}
)

func story(rng *rand.Rand) string {
	name := names[rng.IntN(len(names))]
	friend := friends[rng.IntN(len(friends))]
	thing := things[rng.IntN(len(things))]
	p := rng.Perm(len(places))
	var b strings.Builder
	fmt.Fprintf(&b, "%s had a %s and a friend, a %s. ", name, thing, friend)
	fmt.Fprintf(&b, "One day the %s was gone. %s was %s. ", thing, name, feelings[rng.IntN(len(feelings))])
	fmt.Fprintf(&b, "\"Let us look for it,\" said the %s. ", friend)
	fmt.Fprintf(&b, "They looked %s. No %s. ", places[p[0]], thing)
	fmt.Fprintf(&b, "They looked %s. No %s. ", places[p[1]], thing)
	fmt.Fprintf(&b, "They looked %s. There was the %s! ", places[p[2]], thing)
	fmt.Fprintf(&b, "%s and the %s were happy. ", name, friend)
	fmt.Fprintf(&b, "And the moral of the story is: %s", morals[rng.IntN(len(morals))])
	return b.String()
}

func write(path string, rng *rand.Rand, n int) error {
	var b strings.Builder
	for range n {
		line, err := json.Marshal(map[string]string{"text": story(rng)})
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func main() {
	out := flag.String("out", "examples/quickstart/data", "output directory")
	seed := flag.Uint64("seed", 1, "random seed")
	nTrain := flag.Int("train", 2000, "training stories")
	nEval := flag.Int("eval", 100, "evaluation stories")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(*seed, 0))
	if err := write(filepath.Join(*out, "train.jsonl"), rng, *nTrain); err != nil {
		log.Fatal(err)
	}
	// The evaluation stories come from a separate stream, so they are held out
	// in sampling, not just in position.
	rng = rand.New(rand.NewPCG(*seed, 1))
	if err := write(filepath.Join(*out, "eval.jsonl"), rng, *nEval); err != nil {
		log.Fatal(err)
	}
}
