#include "tinymq/store/records.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace tinymq::store {
namespace {

MessageRecord SampleMessage() {
  MessageRecord m;
  m.topic = "sensors/1/temp";
  m.payload = std::string("21.5\0\xff", 6);
  m.qos = 2;
  m.retain = true;
  m.properties = std::string("\x01\x01", 2);  // Payload Format Indicator 1
  m.expires_at = 1'795'000'000'000;
  return m;
}

// Every strict prefix of a value (a write cut short) and the value with a byte more are refused.
template <typename Decode>
void ExpectTruncationsRefused(const std::string& value, Decode decode) {
  for (std::size_t n = 0; n < value.size(); ++n) {
    EXPECT_FALSE(decode(std::string_view(value).substr(0, n)).has_value()) << "cut at " << n;
  }
  EXPECT_FALSE(decode(value + "x").has_value());
}

TEST(RecordsTest, EachRecordRoundTripsAndRefusesTruncation) {
  const MessageRecord m = SampleMessage();
  EXPECT_EQ(DecodeMessage(Encode(m)), m);
  ExpectTruncationsRefused(Encode(m), DecodeMessage);

  const SessionRecord s{0xFFFFFFFF, 1'795'000'000'123, 65535, 5};
  EXPECT_EQ(DecodeSession(Encode(s)), s);
  ExpectTruncationsRefused(Encode(s), DecodeSession);

  const SubscriptionRecord sub{0x2A, 268'435'455, true};
  EXPECT_EQ(DecodeSubscription(Encode(sub)), sub);
  ExpectTruncationsRefused(Encode(sub), DecodeSubscription);

  QueueRecord q;
  q.message = m;
  q.qos = 1;
  q.retain = true;
  q.state = DeliveryState::kReleased;
  q.packet_id = 513;
  q.ids = {1, 268'435'455};
  q.group = (std::uint64_t{1} << 63) | 7;
  EXPECT_EQ(DecodeQueue(Encode(q)), q);
  const std::optional<QueuePeek> peek = PeekQueue(Encode(q));
  ASSERT_TRUE(peek.has_value());
  EXPECT_EQ(peek->state, DeliveryState::kReleased);
  EXPECT_EQ(peek->payload_size, m.payload.size());
  EXPECT_EQ(peek->expires_at, m.expires_at);
  EXPECT_FALSE(PeekQueue(Encode(q).substr(0, 10)).has_value());
  ExpectTruncationsRefused(Encode(q), DecodeQueue);

  const IncomingRecord in{m, 4, {1, 3}};
  EXPECT_EQ(DecodeIncoming(Encode(in)), in);
  ExpectTruncationsRefused(Encode(in), DecodeIncoming);
  EXPECT_FALSE(DecodeIncoming(Encode(IncomingRecord{m, 2, {2}})).has_value()) << "no worker 2 of 2";
  EXPECT_EQ(RoutedMarkerKey(IncomingKey("p", 5), 1), IncomingKey("p", 5) + std::string("\0\1", 2));

  const WillRecord w{m, 1'795'000'060'000};
  EXPECT_EQ(DecodeWill(Encode(w)), w);
  ExpectTruncationsRefused(Encode(w), DecodeWill);
}

TEST(RecordsTest, ValuesOfAnotherVersionOrOutOfRangeAreRefused) {
  std::string v = Encode(SessionRecord{});
  v[0] = static_cast<char>(kRecordVersion + 1);
  EXPECT_FALSE(DecodeSession(v).has_value());

  MessageRecord bad_qos = SampleMessage();
  bad_qos.qos = 3;
  EXPECT_FALSE(DecodeMessage(Encode(bad_qos)).has_value());

  QueueRecord bad_state;
  bad_state.state = static_cast<DeliveryState>(3);
  EXPECT_FALSE(DecodeQueue(Encode(bad_state)).has_value());

  SessionRecord bad_level;
  bad_level.protocol_level = 6;
  EXPECT_FALSE(DecodeSession(Encode(bad_level)).has_value());

  // A count of identifiers larger than the value could hold is refused before allocating.
  QueueRecord q;
  std::string huge = Encode(q);
  huge.replace(huge.size() - 4, 4, std::string("\x7f\xff\xff\xff", 4));
  EXPECT_FALSE(DecodeQueue(huge).has_value());
}

TEST(RecordsTest, KeysKeepAClientsRecordsTogetherAndItsQueueInOrder) {
  // No client's keys start with another client's prefix, even when one id extends the other.
  EXPECT_FALSE(QueueKey("ab", 1).starts_with(ClientKey("a")));
  EXPECT_TRUE(QueueKey("a", 1).starts_with(ClientKey("a")));
  EXPECT_TRUE(SubscriptionKey("a", "x/#").starts_with(ClientKey("a")));

  // Sequence numbers sort numerically as bytes (big-endian).
  std::vector<std::string> keys;
  for (std::uint64_t seq : {256ULL, 1ULL, 65536ULL, 255ULL, 0ULL, ~0ULL}) {
    keys.push_back(QueueKey("c", seq));
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::uint64_t> order;
  for (const std::string& k : keys) {
    const auto split = SplitClientKey(k);
    ASSERT_TRUE(split.has_value());
    EXPECT_EQ(split->client_id, "c");
    order.push_back(KeyNumber(split->rest).value_or(42));
  }
  EXPECT_EQ(order, (std::vector<std::uint64_t>{0, 1, 255, 256, 65536, ~0ULL}));

  const std::string incoming_key = IncomingKey("dev-7", 0xBEEF);  // (the split views into it)
  const auto incoming = SplitClientKey(incoming_key);
  ASSERT_TRUE(incoming.has_value());
  EXPECT_EQ(incoming->client_id, "dev-7");
  EXPECT_EQ(KeyNumber(incoming->rest), 0xBEEFU);

  const std::string long_id(65535, 'x');  // the longest client id MQTT allows
  const std::string long_key = SubscriptionKey(long_id, "f");
  const auto split = SplitClientKey(long_key);
  ASSERT_TRUE(split.has_value());
  EXPECT_EQ(split->client_id.size(), 65535U);
  EXPECT_EQ(split->rest, "f");

  EXPECT_FALSE(SplitClientKey("").has_value());
  EXPECT_FALSE(SplitClientKey(std::string("\x00\x05"
                                          "abc",
                                          5))
                   .has_value());  // says 5, has 3
  EXPECT_FALSE(KeyNumber("abc").has_value());
}

}  // namespace
}  // namespace tinymq::store
