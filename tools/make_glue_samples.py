"""Writes data/samples/glue/: hand-written rows in the official GLUE TSV layouts.

    python3 tools/make_glue_samples.py
"""
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "samples" / "glue"


def write(task, name, rows, header=None, bom=False):
    d = OUT / task
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    if header is not None:
        lines.append(("\ufeff" if bom else "") + "\t".join(header))
    ncol = len(header) if header else len(rows[0])
    for r in rows:
        r = [str(x) for x in r]
        assert len(r) == ncol, (task, name, r)
        assert all("\t" not in x and "\n" not in x for x in r)
        lines.append("\t".join(r))
    (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- CoLA (no header)
write("CoLA", "train.tsv", [
    ("gj04", 1, "", "The children finished their homework before dinner."),
    ("gj04", 0, "*", "The children finished before dinner their homework."),
    ("bc01", 1, "", "Which book did you say that Mary borrowed?"),
    ("bc01", 0, "*", "Which book did you meet the student who borrowed?"),
    ("ks08", 1, "", "The river seems to be rising quickly."),
    ("ks08", 0, "*", "The river seems rising to be quickly."),
])
write("CoLA", "dev.tsv", [
    ("clc95", 1, "", "She handed the letter to her brother."),
    ("clc95", 0, "*", "She handed to her brother."),
    ("l-93", 1, "", "Sharon appeared before the crowd."),
    ("l-93", 0, "*", "Sharon appeared the crowd."),
])

# ---------------------------------------------------------------- SST-2 (lower-cased, tokenized, trailing space as in GLUE)
H = ["sentence", "label"]
write("SST-2", "train.tsv", [
    ("a warm , funny and quietly moving film ", 1),
    ("the plot creaks along like an old cart with a broken wheel ", 0),
    ("every scene feels padded , and the jokes land with a thud ", 0),
    ("the two leads have an easy , winning chemistry ", 1),
    ("an ambitious mess that never decides what it wants to be ", 0),
    ("gorgeous to look at and a pleasure to sit through ", 1),
], H)
write("SST-2", "dev.tsv", [
    ("it 's a small film , but a generous one . ", 1),
    ("nothing here is as clever as it thinks it is . ", 0),
    ("the final act earns every one of its tears . ", 1),
    ("a tired retread of better thrillers . ", 0),
], H)

# ---------------------------------------------------------------- MRPC (header starts with a UTF-8 BOM, as GLUE's files do)
H = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
write("MRPC", "train.tsv", [
    (1, 1000101, 1000102, "The council approved the new budget on Tuesday after a long debate .",
     "After a lengthy debate , the council passed the new budget on Tuesday ."),
    (0, 1000215, 1000216, "Shares of the company rose 4 percent in early trading .",
     "The company said it would cut 300 jobs by the end of the year ."),
    (1, 1000347, 1000348, 'The museum said the painting was " almost certainly " a forgery .',
     'According to the museum , the painting is " almost certainly " fake .'),
    (0, 1000452, 1000453, "The storm knocked out power to about 20,000 homes on Sunday .",
     "About 20,000 homes were hit by the storm , which also closed two schools on Monday ."),
    (1, 1000590, 1000591, "Police arrested two men in connection with the robbery .",
     "Two men were arrested by police in connection with the robbery ."),
    (0, 1000611, 1000612, "The team won its third straight game on Saturday .",
     "The coach said the team still had much to improve before the playoffs ."),
], H, bom=True)
write("MRPC", "dev.tsv", [
    (1, 2000033, 2000034, "The airline will add four daily flights to the island in March .",
     "Starting in March , the airline will fly four more times a day to the island ."),
    (0, 2000120, 2000121, "The bill passed the Senate by a vote of 61 to 38 .",
     "The House is expected to take up a similar bill next week ."),
    (1, 2000256, 2000257, "Profit fell 12 percent to $ 41 million in the third quarter .",
     "Third-quarter profit dropped 12 percent , to $ 41 million ."),
    (0, 2000378, 2000379, "The singer cancelled two concerts because of a throat infection .",
     "The singer 's new album will be released in the spring ."),
], H, bom=True)

# ---------------------------------------------------------------- STS-B
H = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
write("STS-B", "train.tsv", [
    (0, "main-captions", "MSRvid", "2012test", "0001", "none", "none",
     "A dog is running through the grass.", "A dog runs across a grassy field.", "4.600"),
    (1, "main-captions", "MSRvid", "2012test", "0004", "none", "none",
     "A woman is slicing an onion.", "A man is playing a guitar.", "0.000"),
    (2, "main-captions", "MSRvid", "2012test", "0005", "none", "none",
     "A man is riding a bicycle.", "A man is riding a horse.", "1.400"),
    (3, "main-news", "headlines", "2013", "0007", "none", "none",
     "Heavy rain floods streets in the capital", "Floods hit the capital after heavy rain", "4.200"),
    (4, "main-forums", "deft-forum", "2014", "0012", "none", "none",
     "I think the answer depends on the context.", "It really depends on what the situation is.", "3.000"),
    (5, "main-captions", "images", "2015", "0020", "none", "none",
     "Two children are playing on a beach.", "Two kids play in the sand near the ocean.", "3.800"),
], H)
write("STS-B", "dev.tsv", [
    (0, "main-captions", "MSRvid", "2012test", "0000", "none", "none",
     "A cat is sleeping on a sofa.", "A cat is asleep on the couch.", "5.000"),
    (1, "main-captions", "MSRvid", "2012test", "0002", "none", "none",
     "A man is cutting bread.", "A man is cutting a tomato.", "2.250"),
    (2, "main-news", "headlines", "2015", "0003", "none", "none",
     "Train service resumes after strike", "Prices of bread rise again", "0.200"),
    (3, "main-forums", "answers-forums", "2015", "0009", "none", "none",
     "You should water the plant once a week.", "Water it about once every week.", "4.800"),
], H)

# ---------------------------------------------------------------- QQP
H = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
write("QQP", "train.tsv", [
    (201, 401, 402, "How do I learn to cook simple meals?", "What is the best way to start cooking easy dishes at home?", 1),
    (202, 403, 404, "Why is the sky blue?", "Why do clouds look white?", 0),
    (203, 405, 406, "What are good books for learning statistics?", "Which books should I read to learn statistics?", 1),
    (204, 407, 408, "How long does it take to walk 10 km?", "How far can a person run in one hour?", 0),
    (205, 409, 410, "Is it safe to drink tap water in Lisbon?", "Can you drink the tap water in Lisbon?", 1),
    (206, 411, 412, "How can I improve my handwriting?", "What pen is best for drawing?", 0),
], H)
write("QQP", "dev.tsv", [
    (301, 601, 602, "What is the fastest way to learn to type?", "How can I learn touch typing quickly?", 1),
    (302, 603, 604, "Why do cats purr?", "Why do dogs bark at night?", 0),
    (303, 605, 606, "How do I reset my router?", "What is the process to restart my home router?", 1),
    (304, 607, 608, "What is the capital of Canada?", "What is the largest city in Canada?", 0),
], H)

# ---------------------------------------------------------------- MNLI (parses written by hand; binary parse derived from them)
def tokens(s):
    return re.findall(r"\(|\)|[^\s()]+", s)


def parse_tree(s):
    toks, pos = tokens(s), 0

    def node():
        nonlocal pos
        assert toks[pos] == "("
        pos += 1
        label = toks[pos]; pos += 1
        if toks[pos] != "(":
            word = toks[pos]; pos += 1
            assert toks[pos] == ")"; pos += 1
            return word
        kids = []
        while toks[pos] == "(":
            kids.append(node())
        assert toks[pos] == ")"; pos += 1
        return kids

    t = node()
    assert pos == len(toks)
    return t


def binary(t):
    if isinstance(t, str):
        return t
    kids = [binary(k) for k in t]
    while len(kids) > 2:
        kids[-2:] = [f"( {kids[-2]} {kids[-1]} )"]
    return kids[0] if len(kids) == 1 else f"( {kids[0]} {kids[1]} )"


def words(t):
    return [t] if isinstance(t, str) else [w for k in t for w in words(k)]


P = {
 "The agency will publish its report next year.":
   "(ROOT (S (NP (DT The) (NN agency)) (VP (MD will) (VP (VB publish) (NP (PRP$ its) (NN report)) (NP-TMP (JJ next) (NN year)))) (. .)))",
 "The report is expected next year.":
   "(ROOT (S (NP (DT The) (NN report)) (VP (VBZ is) (VP (VBN expected) (NP-TMP (JJ next) (NN year)))) (. .)))",
 "She closed the door and sat down by the fire.":
   "(ROOT (S (NP (PRP She)) (VP (VP (VBD closed) (NP (DT the) (NN door))) (CC and) (VP (VBD sat) (PRT (RP down)) (PP (IN by) (NP (DT the) (NN fire))))) (. .)))",
 "She stayed standing at the open door.":
   "(ROOT (S (NP (PRP She)) (VP (VBD stayed) (S (VP (VBG standing) (PP (IN at) (NP (DT the) (JJ open) (NN door)))))) (. .)))",
 "yeah we usually go camping in the summer":
   "(ROOT (S (INTJ (UH yeah)) (NP (PRP we)) (ADVP (RB usually)) (VP (VBP go) (S (VP (VBG camping) (PP (IN in) (NP (DT the) (NN summer))))))))",
 "They go camping every August.":
   "(ROOT (S (NP (PRP They)) (VP (VBP go) (S (VP (VBG camping))) (NP-TMP (DT every) (NNP August))) (. .)))",
 "The old town is best explored on foot.":
   "(ROOT (S (NP (DT The) (JJ old) (NN town)) (VP (VBZ is) (ADVP (RBS best)) (VP (VBN explored) (PP (IN on) (NP (NN foot))))) (. .)))",
 "Walking is a good way to see the old town.":
   "(ROOT (S (NP (NN Walking)) (VP (VBZ is) (NP (NP (DT a) (JJ good) (NN way)) (S (VP (TO to) (VP (VB see) (NP (DT the) (JJ old) (NN town))))))) (. .)))",
 "Critics have praised the novel for its humor.":
   "(ROOT (S (NP (NNS Critics)) (VP (VBP have) (VP (VBN praised) (NP (DT the) (NN novel)) (PP (IN for) (NP (PRP$ its) (NN humor))))) (. .)))",
 "The novel has sold more than a million copies.":
   "(ROOT (S (NP (DT The) (NN novel)) (VP (VBZ has) (VP (VBN sold) (NP (QP (JJR more) (IN than) (DT a) (CD million)) (NNS copies)))) (. .)))",
 "The program was cancelled in 2003.":
   "(ROOT (S (NP (DT The) (NN program)) (VP (VBD was) (VP (VBN cancelled) (PP (IN in) (NP (CD 2003))))) (. .)))",
 "The program is still running today.":
   "(ROOT (S (NP (DT The) (NN program)) (VP (VBZ is) (ADVP (RB still)) (VP (VBG running) (NP-TMP (NN today)))) (. .)))",
 # dev_matched
 "He missed the last bus and had to walk home.":
   "(ROOT (S (NP (PRP He)) (VP (VP (VBD missed) (NP (DT the) (JJ last) (NN bus))) (CC and) (VP (VBD had) (S (VP (TO to) (VP (VB walk) (ADVP (RB home))))))) (. .)))",
 "He got home on foot.":
   "(ROOT (S (NP (PRP He)) (VP (VBD got) (ADVP (RB home)) (PP (IN on) (NP (NN foot)))) (. .)))",
 "The rules apply to all firms with more than fifty employees.":
   "(ROOT (S (NP (DT The) (NNS rules)) (VP (VBP apply) (PP (IN to) (NP (NP (DT all) (NNS firms)) (PP (IN with) (NP (QP (JJR more) (IN than) (CD fifty)) (NNS employees)))))) (. .)))",
 "Small firms with ten employees are exempt from the rules.":
   "(ROOT (S (NP (NP (JJ Small) (NNS firms)) (PP (IN with) (NP (CD ten) (NNS employees)))) (VP (VBP are) (ADJP (JJ exempt) (PP (IN from) (NP (DT the) (NNS rules))))) (. .)))",
 "The columnist doubts that the plan will work.":
   "(ROOT (S (NP (DT The) (NN columnist)) (VP (VBZ doubts) (SBAR (IN that) (S (NP (DT the) (NN plan)) (VP (MD will) (VP (VB work)))))) (. .)))",
 "The columnist wrote about the plan last week.":
   "(ROOT (S (NP (DT The) (NN columnist)) (VP (VBD wrote) (PP (IN about) (NP (DT the) (NN plan))) (NP-TMP (JJ last) (NN week))) (. .)))",
 "i never liked living in a big city":
   "(ROOT (S (NP (PRP i)) (ADVP (RB never)) (VP (VBD liked) (S (VP (VBG living) (PP (IN in) (NP (DT a) (JJ big) (NN city))))))))",
 "The speaker loves city life.":
   "(ROOT (S (NP (DT The) (NN speaker)) (VP (VBZ loves) (NP (NN city) (NN life))) (. .)))",
 # dev_mismatched
 "We talked for an hour about the garden.":
   "(ROOT (S (NP (PRP We)) (VP (VBD talked) (PP (IN for) (NP (DT an) (NN hour))) (PP (IN about) (NP (DT the) (NN garden)))) (. .)))",
 "They discussed the garden.":
   "(ROOT (S (NP (PRP They)) (VP (VBD discussed) (NP (DT the) (NN garden))) (. .)))",
 "Your gift will help us buy books for the school.":
   "(ROOT (S (NP (PRP$ Your) (NN gift)) (VP (MD will) (VP (VB help) (S (NP (PRP us)) (VP (VB buy) (NP (NNS books)) (PP (IN for) (NP (DT the) (NN school))))))) (. .)))",
 "The school already has more books than it needs.":
   "(ROOT (S (NP (DT The) (NN school)) (ADVP (RB already)) (VP (VBZ has) (NP (NP (JJR more) (NNS books)) (SBAR (IN than) (S (NP (PRP it)) (VP (VBZ needs)))))) (. .)))",
 "The commission heard testimony from dozens of witnesses.":
   "(ROOT (S (NP (DT The) (NN commission)) (VP (VBD heard) (NP (NN testimony)) (PP (IN from) (NP (NP (NNS dozens)) (PP (IN of) (NP (NNS witnesses)))))) (. .)))",
 "The witnesses were paid for their testimony.":
   "(ROOT (S (NP (DT The) (NNS witnesses)) (VP (VBD were) (VP (VBN paid) (PP (IN for) (NP (PRP$ their) (NN testimony))))) (. .)))",
 "The word has changed its meaning over the centuries.":
   "(ROOT (S (NP (DT The) (NN word)) (VP (VBZ has) (VP (VBN changed) (NP (PRP$ its) (NN meaning)) (PP (IN over) (NP (DT the) (NNS centuries))))) (. .)))",
 "The word has always meant the same thing.":
   "(ROOT (S (NP (DT The) (NN word)) (VP (VBZ has) (ADVP (RB always)) (VP (VBN meant) (NP (DT the) (JJ same) (NN thing)))) (. .)))",
}
for s, p in P.items():
    w = words(parse_tree(p))
    assert " ".join(w) == " ".join(re.findall(r"\w+|[^\w\s]", s)) or " ".join(w).replace(" .", ".") == s, (s, w)

SUF = {"entailment": "e", "neutral": "n", "contradiction": "c"}


def mnli_row(i, prompt, genre, s1, s2, labels, gold):
    t1, t2 = parse_tree(P[s1]), parse_tree(P[s2])
    return (i, prompt, f"{prompt}{SUF[labels[0]]}", genre, binary(t1), binary(t2), P[s1], P[s2], s1, s2, *labels, gold)


HT = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
      "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
HD = HT[:11] + ["label2", "label3", "label4", "label5", "gold_label"]
E, N, C = "entailment", "neutral", "contradiction"
write("MNLI", "train.tsv", [
    mnli_row(0, 70011, "government", "The agency will publish its report next year.", "The report is expected next year.", [E], E),
    mnli_row(1, 70012, "fiction", "She closed the door and sat down by the fire.", "She stayed standing at the open door.", [C], C),
    mnli_row(2, 70013, "telephone", "yeah we usually go camping in the summer", "They go camping every August.", [N], N),
    mnli_row(3, 70014, "travel", "The old town is best explored on foot.", "Walking is a good way to see the old town.", [E], E),
    mnli_row(4, 70015, "slate", "Critics have praised the novel for its humor.", "The novel has sold more than a million copies.", [N], N),
    mnli_row(5, 70016, "government", "The program was cancelled in 2003.", "The program is still running today.", [C], C),
], HT)
write("MNLI", "dev_matched.tsv", [
    mnli_row(0, 80021, "fiction", "He missed the last bus and had to walk home.", "He got home on foot.", [E, E, E, N, E], E),
    mnli_row(1, 80022, "government", "The rules apply to all firms with more than fifty employees.", "Small firms with ten employees are exempt from the rules.", [E, N, E, E, C], E),
    mnli_row(2, 80023, "slate", "The columnist doubts that the plan will work.", "The columnist wrote about the plan last week.", [N, N, N, E, N], N),
    mnli_row(3, 80024, "telephone", "i never liked living in a big city", "The speaker loves city life.", [C, C, C, C, C], C),
], HD)
write("MNLI", "dev_mismatched.tsv", [
    mnli_row(0, 90031, "facetoface", "We talked for an hour about the garden.", "They discussed the garden.", [E, E, E, E, E], E),
    mnli_row(1, 90032, "letters", "Your gift will help us buy books for the school.", "The school already has more books than it needs.", [C, C, N, C, C], C),
    mnli_row(2, 90033, "nineeleven", "The commission heard testimony from dozens of witnesses.", "The witnesses were paid for their testimony.", [N, N, C, N, N], N),
    mnli_row(3, 90034, "oup", "The word has changed its meaning over the centuries.", "The word has always meant the same thing.", [C, C, C, N, C], C),
], HD)

# ---------------------------------------------------------------- QNLI
H = ["index", "question", "sentence", "label"]
write("QNLI", "train.tsv", [
    (0, "When was the bridge completed?", "The bridge was completed in 1932 after six years of construction.", "entailment"),
    (1, "Who designed the town hall?", "The town hall stands on the east side of the main square.", "not_entailment"),
    (2, "What do hedgehogs mainly eat?", "Hedgehogs feed mostly on insects, worms and snails.", "entailment"),
    (3, "How tall is the lighthouse?", "The lighthouse was automated in 1985 and no longer has a keeper.", "not_entailment"),
    (4, "Which river flows through the city?", "The city grew up on both banks of the Arno river.", "entailment"),
    (5, "What language is spoken in the valley?", "The valley is known for its cheese and its steep vineyards.", "not_entailment"),
], H)
write("QNLI", "dev.tsv", [
    (0, "How many moons does the planet have?", "The planet has two small, irregularly shaped moons.", "entailment"),
    (1, "Where was the composer born?", "The composer wrote most of his symphonies in Vienna.", "not_entailment"),
    (2, "What is the museum's most famous painting?", "Its best-known work is a portrait of a young woman with a pearl earring.", "entailment"),
    (3, "When did the railway open?", "The railway carries about two million passengers each year.", "not_entailment"),
], H)

# ---------------------------------------------------------------- RTE
H = ["index", "sentence1", "sentence2", "label"]
write("RTE", "train.tsv", [
    (0, "The company, founded in 1998 by two students, now employs over 4,000 people.", "The company was founded by two students.", "entailment"),
    (1, "The mayor announced that the new library will open in the spring.", "The new library opened last year.", "not_entailment"),
    (2, "Heavy snow closed the mountain pass for three days in January.", "The mountain pass was closed because of snow.", "entailment"),
    (3, "The researchers tested the vaccine on 300 volunteers.", "The vaccine was approved for general use.", "not_entailment"),
    (4, "After winning the final, the captain lifted the cup in front of 60,000 fans.", "The captain's team won the final.", "entailment"),
    (5, "The painter spent his last years in a small village near the coast.", "The painter was born near the coast.", "not_entailment"),
], H)
write("RTE", "dev.tsv", [
    (0, "The bakery on Main Street has been run by the same family since 1921.", "The bakery is a family business.", "entailment"),
    (1, "Officials said the fire started in a kitchen on the second floor.", "The fire started in the basement.", "not_entailment"),
    (2, "The orchestra will tour Japan and Korea next autumn.", "The orchestra plans to perform in Japan.", "entailment"),
    (3, "The novel was translated into more than forty languages.", "The novel won a major literary prize.", "not_entailment"),
], H)

# ---------------------------------------------------------------- WNLI
write("WNLI", "train.tsv", [
    (0, "The cup would not fit on the shelf because it was too tall.", "The cup was too tall.", 1),
    (1, "The cup would not fit on the shelf because it was too tall.", "The shelf was too tall.", 0),
    (2, "Anna thanked Maria because she had helped her move.", "Maria had helped her move.", 1),
    (3, "Anna thanked Maria because she had helped her move.", "Anna had helped her move.", 0),
    (4, "The dog chased the cat until it climbed a tree.", "The cat climbed a tree.", 1),
    (5, "The dog chased the cat until it climbed a tree.", "The dog climbed a tree.", 0),
], H)
write("WNLI", "dev.tsv", [
    (0, "The boat passed the bridge because it was moving fast.", "The boat was moving fast.", 1),
    (1, "The boat passed the bridge because it was moving fast.", "The bridge was moving fast.", 0),
    (2, "Tom could not lift the box because he was too weak.", "Tom was too weak.", 1),
    (3, "Tom could not lift the box because it was too heavy.", "Tom was too heavy.", 0),
], H)
print("ok")
