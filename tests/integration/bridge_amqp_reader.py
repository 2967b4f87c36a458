#!/usr/bin/python3
"""Reads a RabbitMQ queue with pika, a client independent of switchboard.

usage: bridge_amqp_reader.py AMQP_URL QUEUE

Gets every message waiting in QUEUE (auto-ack) and prints one line each:
routing key, headers as JSON (sorted), body, separated by '|'. The bridge
tests check those against what was sent on the other side of a bridge.
"""
import json
import sys

import pika


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def main():
    url, queue = sys.argv[1:3]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        headers = {k: text(v) for k, v in (properties.headers or {}).items()}
        print(method.routing_key + "|" + json.dumps(headers, sort_keys=True) + "|" + body.decode())
    connection.close()


if __name__ == "__main__":
    main()
