#include "amqp_client.hpp"

#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <stdexcept>

namespace bridge_bench {

AmqpConnection::AmqpConnection(const std::string& host, int port) : conn_(amqp_new_connection()) {
  amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
  if (!socket || amqp_socket_open(socket, host.c_str(), port) != AMQP_STATUS_OK) {
    amqp_destroy_connection(conn_);
    throw std::runtime_error("amqp: cannot connect to " + host + ":" + std::to_string(port));
  }
  amqp_rpc_reply_t login =
      amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_destroy_connection(conn_);
    throw std::runtime_error("amqp: login refused");
  }
  amqp_channel_open(conn_, 1);
  check("channel.open");
  amqp_exchange_declare(conn_, 1, amqp_cstring_bytes(kExchange), amqp_cstring_bytes("topic"), 0, 1,
                        0, 0, amqp_empty_table);
  check("exchange.declare");
}

AmqpConnection::~AmqpConnection() {
  amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn_);
}

void AmqpConnection::check(const char* what) const {
  if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL) {
    throw std::runtime_error(std::string("amqp: ") + what + " failed");
  }
}

AmqpConfirmPublisher::AmqpConfirmPublisher(const std::string& host, int port) : conn_(host, port) {
  amqp_confirm_select(conn_.get(), 1);
  conn_.check("confirm.select");
}

void AmqpConfirmPublisher::publish(const std::string& routing_key, const std::string& payload) {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;  // persistent, as publish_durable
  amqp_bytes_t body{payload.size(), const_cast<char*>(payload.data())};
  // Mandatory, as publish_durable: a message no queue takes comes back
  // (basic.return) instead of being confirmed and dropped.
  int rc = amqp_basic_publish(conn_.get(), 1, amqp_cstring_bytes(kExchange),
                              amqp_cstring_bytes(routing_key.c_str()), 1, 0, &props, body);
  if (rc != AMQP_STATUS_OK) throw std::runtime_error("amqp publish: " + std::to_string(rc));
  ++published_;
}

void AmqpConfirmPublisher::read_confirms(bool wait) {
  for (;;) {
    amqp_frame_t frame;
    timeval zero{0, 0};
    timeval five{5, 0};
    int rc = amqp_simple_wait_frame_noblock(conn_.get(), &frame, wait ? &five : &zero);
    if (rc == AMQP_STATUS_TIMEOUT) {
      if (wait) throw std::runtime_error("amqp: no publisher confirm in 5 s");
      return;
    }
    if (rc != AMQP_STATUS_OK) throw std::runtime_error("amqp: connection lost while confirming");
    if (frame.frame_type == AMQP_FRAME_METHOD) {
      if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        if (ack->delivery_tag > confirmed_) confirmed_ = ack->delivery_tag;
      } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        throw std::runtime_error("amqp: the broker refused a message (nack)");
      } else if (frame.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
        throw std::runtime_error("amqp: the broker returned a message: no queue is bound");
      }
    }
    if (wait && confirmed_ >= published_) return;
  }
}

void AmqpConfirmPublisher::wait_all_confirmed() {
  while (confirmed_ < published_) read_confirms(true);
}

AmqpReader::AmqpReader(const std::string& host, int port, const std::string& routing_key,
                       Tally& tally)
    : conn_(host, port) {
  amqp_connection_state_t c = conn_.get();
  amqp_queue_declare_ok_t* q =
      amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
  conn_.check("queue.declare");
  amqp_bytes_t queue = amqp_bytes_malloc_dup(q->queue);
  amqp_queue_bind(c, 1, queue, amqp_cstring_bytes(kExchange),
                  amqp_cstring_bytes(routing_key.c_str()), amqp_empty_table);
  conn_.check("queue.bind");
  amqp_basic_consume(c, 1, queue, amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  amqp_bytes_free(queue);
  conn_.check("basic.consume");
  thread_ = std::thread([this, c, &tally] {
    while (!stop_.load()) {
      amqp_maybe_release_buffers(c);
      amqp_envelope_t envelope;
      timeval timeout{0, 50000};
      amqp_rpc_reply_t r = amqp_consume_message(c, &envelope, &timeout, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) continue;  // timeout: look at stop_
      tally.record(
          {static_cast<const char*>(envelope.message.body.bytes), envelope.message.body.len});
      amqp_destroy_envelope(&envelope);
    }
  });
}

AmqpReader::~AmqpReader() {
  stop_ = true;
  thread_.join();
}

}  // namespace bridge_bench
