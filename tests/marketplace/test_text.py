from typing import get_args

from server.marketplace.text import CATEGORIES, Category, normalise_tags, search_tokens, skill_key


def test_skill_keys_fold_case_space_punctuation_and_versions():
    assert {skill_key(s) for s in ("Python", "python ", " PYTHON3", "Python 3.11")} == {"python"}
    assert skill_key("Node.js") == skill_key("nodejs") == "nodejs"
    assert skill_key("Machine  Learning") == skill_key("machine-learning")
    assert skill_key("C++") == "c++" and skill_key("C#") == "c#"
    assert skill_key("S3") == "s3" and skill_key("ES6") == "es6"  # too short to drop
    assert skill_key("Español") == "espanol"


def test_tags_and_tokens():
    assert normalise_tags(["  Data Science ", "data_science", "C++", "", "--"]) == [
        "data-science", "c++"]
    assert search_tokens("Learn the Python3 lessons, café") == ["python", "lesson", "cafe"]


def test_every_category_id_has_a_name_in_order():
    assert tuple(CATEGORIES) == get_args(Category)
