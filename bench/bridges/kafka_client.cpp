#include "kafka_client.hpp"

#include <stdexcept>

namespace bridge_bench {
namespace {

rd_kafka_conf_t* base_conf(const std::string& bootstrap) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka: ") + err);
  }
  return conf;
}

void set(rd_kafka_conf_t* conf, const char* key, const char* value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
    throw std::runtime_error(std::string("kafka ") + key + ": " + err);
  }
}

rd_kafka_t* make(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka client: ") + err);
  }
  return rk;
}

}  // namespace

void create_kafka_topic(const std::string& bootstrap, const std::string& topic) {
  rd_kafka_t* rk = make(RD_KAFKA_PRODUCER, base_conf(bootstrap));
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), 1, 1, err, sizeof err);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, nullptr, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 30000);
  std::string failure;
  if (!ev) {
    failure = "no answer in 30 s";
  } else if (const auto* result = rd_kafka_event_CreateTopics_result(ev)) {
    std::size_t n = 0;
    const rd_kafka_topic_result_t** topics = rd_kafka_CreateTopics_result_topics(result, &n);
    for (std::size_t i = 0; i < n; ++i) {
      auto code = rd_kafka_topic_result_error(topics[i]);
      if (code && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        failure = rd_kafka_err2str(code);
      }
    }
  } else {
    failure = rd_kafka_event_error_string(ev);
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_destroy(rk);
  if (!failure.empty()) throw std::runtime_error("create topic " + topic + ": " + failure);
}

KafkaProducer::KafkaProducer(const std::string& bootstrap, bool idempotence) {
  rd_kafka_conf_t* conf = base_conf(bootstrap);
  set(conf, "enable.idempotence", idempotence ? "true" : "false");
  set(conf, "acks", "all");
  set(conf, "linger.ms", "5");
  set(conf, "socket.nagle.disable", "true");
  rd_kafka_conf_set_dr_msg_cb(conf, &KafkaProducer::on_delivery);
  rd_kafka_conf_set_opaque(conf, this);
  rk_ = make(RD_KAFKA_PRODUCER, conf);
}

KafkaProducer::~KafkaProducer() {
  rd_kafka_flush(rk_, 10000);
  rd_kafka_destroy(rk_);
}

void KafkaProducer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<KafkaProducer*>(opaque);
  (m->err ? self->failed_ : self->delivered_).fetch_add(1);
}

void KafkaProducer::produce(const std::string& topic, const std::string& payload) {
  for (;;) {
    auto err =
        rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
                          RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!err) return;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(err));
    }
    rd_kafka_poll(rk_, 1);
  }
}

void KafkaProducer::flush() {
  if (rd_kafka_flush(rk_, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR || failed_ > 0) {
    throw std::runtime_error("raw producer: " + std::to_string(failed_.load()) +
                             " messages failed or were not delivered in 60 s");
  }
}

KafkaReader::KafkaReader(const std::string& bootstrap, const std::string& topic, Tally& tally) {
  rd_kafka_conf_t* conf = base_conf(bootstrap);
  set(conf, "group.id", "switchboard-bridge-bench");
  set(conf, "enable.auto.commit", "false");
  rk_ = make(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(rk_);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  auto err = rd_kafka_assign(rk_, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err) {
    rd_kafka_destroy(rk_);
    throw std::runtime_error(std::string("assign: ") + rd_kafka_err2str(err));
  }
  thread_ = std::thread([this, &tally] {
    while (!stop_.load()) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 50);
      if (!m) continue;
      if (!m->err) tally.record({static_cast<const char*>(m->payload), m->len});
      rd_kafka_message_destroy(m);
    }
  });
}

KafkaReader::~KafkaReader() {
  stop_ = true;
  thread_.join();
  rd_kafka_consumer_close(rk_);
  rd_kafka_destroy(rk_);
}

}  // namespace bridge_bench
