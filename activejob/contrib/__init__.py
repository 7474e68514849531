"""Integrations with web frameworks, each imported only by the applications that use it
(`activejob.contrib.django`); the core never imports them."""
