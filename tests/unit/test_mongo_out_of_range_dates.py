"""A MongoDB date outside Python's datetime range (years 1-9999) lands instead of failing the
source. BSON dates span ±292 million years and a real mongod stores any of them (JavaScript's
`new Date(8.64e15)` is year 275760); pymongo's default decoding raised InvalidBSON for the
server's whole reply, not a PyMongoError, so every batch of that collection failed on it for
good. SecantusDB refuses to store such a date, so this decodes a reply's document with the
extractor's client options instead of asking a server."""

from __future__ import annotations

import bson
from bson.datetime_ms import DatetimeMS

from customer360.config import Settings
from extractors import Extractor
from extractors.mongo_source import document_json


def test_a_date_beyond_year_9999_decodes_and_lands_as_milliseconds(tmp_path) -> None:
    reply_document = bson.encode(
        {"_id": 1, "id": 7, "created_at": DatetimeMS(8_640_000_000_000_000), "at": DatetimeMS(0)}
    )
    settings = Settings(home=tmp_path, mongo_uri="mongodb://127.0.0.1:9")  # never connected
    with Extractor(settings) as extractor:
        codec_options = extractor.source("users").collection.codec_options
        document = bson.decode(reply_document, codec_options=codec_options)
    assert document_json(document) == (
        '{"_id": 1, "id": 7, "created_at": {"$date": {"$numberLong": "8640000000000000"}},'
        ' "at": {"$date": "1970-01-01T00:00:00Z"}}'
    )
