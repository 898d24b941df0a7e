import pytest

from coinlake.storage import Storage


def test_storage_round_trip_on_s3(s3_bucket):
    st = Storage(f"s3://{s3_bucket}/landing")
    st.write_atomic("2026/11/24/04/a.json", b'{"x":1}\n')
    assert st.read("2026/11/24/04/a.json") == b'{"x":1}\n'
    assert [f.key for f in st.list()] == ["2026/11/24/04/a.json"]
    assert st.url("x").startswith("s3://")


def test_storage_round_trip_local(tmp_path):
    st = Storage(str(tmp_path / "landing"))
    st.write_atomic("2026/11/24/04/a.json", b"abc")
    assert st.read("2026/11/24/04/a.json") == b"abc"
    assert [(f.key, f.size) for f in st.list(suffix=".json")] == [("2026/11/24/04/a.json", 3)]


def test_local_read_and_delete_behave_as_on_s3(tmp_path, s3_bucket):
    """The local fast paths keep the contract: a missing file raises FileNotFoundError on
    read and is a no-op on delete, in both kinds of storage."""
    for st in (Storage(str(tmp_path / "lake")), Storage(f"s3://{s3_bucket}/lake")):
        st.write_new("a/b.parquet", b"x")
        assert st.read("a/b.parquet") == b"x"
        st.delete("a/b.parquet")
        st.delete("a/b.parquet")  # already gone: nothing happens
        assert not st.exists("a/b.parquet")
        with pytest.raises(FileNotFoundError):
            st.read("a/b.parquet")
