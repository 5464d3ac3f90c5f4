from pipeline.agreement import LocalAgreement


def test_commits_what_two_hypotheses_agree_on():
    la = LocalAgreement()
    assert la.update("the cat") == []
    assert la.update("the cat sat on") == ["the", "cat"]
    assert la.update("the cat sat on the mat") == ["sat", "on"]
    assert la.committed_text == "the cat sat on"


def test_agreement_ignores_case_and_punctuation_but_stops_at_a_change():
    la = LocalAgreement()
    la.update("Hello, world. Goodbye")
    assert la.update("hello world, good day") == ["hello", "world,"]
    assert la.committed == ["hello", "world,"]


def test_committed_words_never_change():
    la = LocalAgreement()
    la.update("one two three")
    la.update("one two three four")
    la.update("uno dos")  # a wild hypothesis cannot take back committed words
    assert la.committed == ["one", "two", "three"]
