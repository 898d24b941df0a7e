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
