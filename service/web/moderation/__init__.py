"""The moderators' side: review pages (login, queues, overview, Models) and the JSON moderation API."""
