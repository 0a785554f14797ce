"""The Kafka transport: the same handlers as the SQS runtime, driven by faust agents.

One events topic partitioned by aggregate key (authorId for posts, userId for
profiles, requesterId for connections) keeps one user's events in order; each
pipeline is a consumer group with its own retry and dead-letter topics.
"""
